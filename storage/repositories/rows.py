"""Typed rows: what crosses the repository boundary (never `dict[str, Any]`), and the one builder of a new
artifact row (version 1, a new version, a generated document).

Rows are `@dataclass(slots=True)`: a repository builds one per fetched tuple, positionally, which costs a small
fraction of a validated pydantic model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from artifact_mcp.storage.models import Job, Scope

# Artifact columns, in table order (`ArtifactRow`'s fields follow it, then `is_expired`, which is derived).
ARTIFACT_COLUMNS: tuple[str, ...] = (
    "artifact_id", "org_id", "workspace_id", "namespace_id", "thread_id", "name", "description",
    "artifact_type", "version", "root_artifact_id", "is_latest", "replaced_by_version", "content_kind",
    "content_preview", "content_text", "file_name", "mime_type", "size_bytes", "sha256", "has_file",
    "blob_key", "summary", "keywords", "tags", "metadata", "source", "source_execution_id",
    "source_step_id", "source_tool", "scope", "status", "ttl_seconds", "expires_at", "is_pinned",
    "is_indexed", "indexed_at", "index_collection", "index_error", "index_attempts", "embedding_model_id",
    "chunk_count", "promoted_to_source_id", "created_by", "created_at", "updated_at",
    # migration 3: generated documents
    "document_type", "format", "generation_error",
)
# Chunk columns but the embedding, in the order `ChunkRepository.add_rows` takes them.
CHUNK_COLUMNS: tuple[str, ...] = (
    "seq", "artifact_id", "root_artifact_id", "version", "org_id", "workspace_id", "namespace_id", "thread_id",
    "artifact_type", "tags", "collection", "expires_at", "chunk_index", "n_terms", "chunk_id", "start_char",
    "end_char", "text",
)
# The chunk columns copied from the artifact row (a node's metadata, for a LlamaIndex writer).
META_COLUMNS: tuple[str, ...] = (
    "seq", "artifact_id", "root_artifact_id", "version", "org_id", "workspace_id", "namespace_id", "thread_id",
    "artifact_type", "tags", "collection", "expires_at", "chunk_index", "n_terms",
)
# Fields copied from the previous version when a content change makes a new one.
# (The tenant, name, type and root are passed to `new_artifact_row` on their own.)
INHERITED: tuple[str, ...] = (
    "thread_id", "description", "summary", "keywords", "tags", "metadata", "source",
    "source_execution_id", "source_step_id", "source_tool", "scope", "status", "ttl_seconds", "is_pinned",
    "promoted_to_source_id",
)
# The descriptive columns a caller may set on a new row (everything else is derived by `new_artifact_row`).
DESCRIPTIVE: frozenset[str] = frozenset({
    "thread_id", "description", "summary", "keywords", "tags", "metadata", "source", "source_execution_id",
    "source_step_id", "source_tool", "scope", "status", "ttl_seconds", "is_pinned", "promoted_to_source_id",
    "created_by", "document_type", "format", "generation_error",
})


@dataclass(slots=True)
class ArtifactRow:
    """One artifact version: every column of `artifacts`, plus `is_expired` (computed at read time)."""

    artifact_id: str
    org_id: str
    workspace_id: str
    namespace_id: str
    thread_id: str | None
    name: str
    description: str | None
    artifact_type: str
    version: int
    root_artifact_id: str
    is_latest: bool
    replaced_by_version: int | None
    content_kind: str | None
    content_preview: str | None
    content_text: str | None
    file_name: str | None
    mime_type: str
    size_bytes: int
    sha256: str | None
    has_file: bool
    blob_key: str | None
    summary: str | None
    keywords: list[str]
    tags: list[str]
    metadata: dict[str, Any]
    source: str | None
    source_execution_id: str | None
    source_step_id: str | None
    source_tool: str | None
    scope: str
    status: str
    ttl_seconds: int | None
    expires_at: datetime | None
    is_pinned: bool
    is_indexed: bool
    indexed_at: datetime | None
    index_collection: str | None
    index_error: str | None
    index_attempts: int
    embedding_model_id: str | None
    chunk_count: int
    promoted_to_source_id: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    document_type: str | None = None
    format: str | None = None
    generation_error: str | None = None
    is_expired: bool = False

    @property
    def tenant(self) -> Scope:
        return Scope(org_id=self.org_id, workspace_id=self.workspace_id, namespace_id=self.namespace_id)

    def in_scope(self, scope: Scope) -> bool:
        return (self.org_id, self.workspace_id, self.namespace_id) == (
            scope.org_id, scope.workspace_id, scope.namespace_id)

    def chunk_expiry(self) -> datetime | None:
        """When this version's chunks stop being searchable: never while pinned."""
        return None if self.is_pinned else self.expires_at

    def index_owns_status(self) -> bool:
        """Indexing drives `status` (pending -> processing -> ready/failed) except on a generated document, whose
        status belongs to its generation job (processing -> completed/failed); indexing it later leaves that
        alone."""
        return self.document_type is None


@dataclass(slots=True)
class ContentColumns:
    """The columns describing a version's content (text/JSON, or a file in the blob store)."""

    content_kind: str | None
    content_text: str | None
    content_preview: str | None
    mime_type: str
    size_bytes: int
    sha256: str | None
    has_file: bool
    blob_key: str | None
    file_name: str | None


@dataclass(slots=True)
class ArtifactRef:
    """Just enough of a row to queue a job for it."""

    artifact_id: str
    org_id: str
    workspace_id: str
    namespace_id: str


@dataclass(slots=True)
class ArtifactTally:
    """One scope's artifact counts and storage (`ArtifactRepository.tally`)."""

    by_type: dict[str, int]  # latest, unexpired versions
    by_status: dict[str, int]
    versions: int
    content_bytes: int
    blobs: int
    blob_bytes: int


@dataclass(slots=True)
class JobTally:
    """One scope's background jobs by state (`JobRepository.tally`)."""

    pending: int
    running: int
    failed: int
    oldest_pending_at: datetime | None


@dataclass(slots=True)
class ClaimedJob:
    job_id: str
    artifact_id: str
    type: str
    attempts: int


@dataclass(slots=True)
class SourceRow:
    source_id: str
    root_artifact_id: str
    artifact_id: str
    source_name: str
    description: str | None
    org_id: str
    workspace_id: str
    namespace_id: str
    created_at: datetime


@dataclass(slots=True)
class GenerationRow:
    """A generation request as accepted: the request (JSON), its material ids, the client model's draft."""

    artifact_id: str
    job_id: str
    principal_id: str
    request: Any  # the request's JSON (a str, or the parsed value)
    source_ids: list[str]
    draft: str | None
    draft_model: str | None
    created_at: datetime


@dataclass(slots=True)
class IdempotencyRow:
    principal_id: str
    key: str
    request_hash: str
    artifact_id: str
    job_id: str
    created_at: datetime
    expires_at: datetime


@dataclass(slots=True)
class ChunkHit:
    """A chunk found by similarity (`ChunkRepository.nearest`)."""

    seq: int
    chunk_id: str
    artifact_id: str
    start: int
    end: int
    text: str
    score: float


@dataclass(slots=True)
class ChunkText:
    """A stored chunk's text and position (what a search hit shows)."""

    seq: int
    artifact_id: str
    chunk_index: int
    start: int
    end: int
    text: str
    collection: str


def expiry(now: datetime, ttl_seconds: int | None) -> datetime | None:
    return now + timedelta(seconds=ttl_seconds) if ttl_seconds else None


def new_artifact_row(artifact_id: str, tenant: Scope, *, name: str, artifact_type: str, content: ContentColumns,
                     now: datetime, version: int = 1, root_artifact_id: str | None = None,
                     **fields: Any) -> ArtifactRow:
    """A new, latest, not yet indexed artifact version in `tenant`. `fields` are descriptive columns
    (`DESCRIPTIVE`); None or absent takes the default. `expires_at` follows from `ttl_seconds` counted from `now`."""
    unknown = fields.keys() - DESCRIPTIVE
    if unknown:
        raise KeyError(f"not descriptive columns: {sorted(unknown)}")
    ttl = fields.get("ttl_seconds")
    return ArtifactRow(
        artifact_id=artifact_id, org_id=tenant.org_id, workspace_id=tenant.workspace_id,
        namespace_id=tenant.namespace_id, thread_id=fields.get("thread_id"), name=name,
        description=fields.get("description"), artifact_type=artifact_type, version=version,
        root_artifact_id=root_artifact_id or artifact_id, is_latest=True, replaced_by_version=None,
        content_kind=content.content_kind, content_preview=content.content_preview,
        content_text=content.content_text, file_name=content.file_name, mime_type=content.mime_type,
        size_bytes=content.size_bytes, sha256=content.sha256, has_file=content.has_file, blob_key=content.blob_key,
        summary=fields.get("summary"), keywords=fields.get("keywords") or [], tags=fields.get("tags") or [],
        metadata=fields.get("metadata") or {}, source=fields.get("source"),
        source_execution_id=fields.get("source_execution_id"), source_step_id=fields.get("source_step_id"),
        source_tool=fields.get("source_tool"), scope=fields.get("scope") or "namespace",
        status=fields.get("status") or "pending", ttl_seconds=ttl, expires_at=expiry(now, ttl),
        is_pinned=bool(fields.get("is_pinned")), is_indexed=False, indexed_at=None, index_collection=None,
        index_error=None, index_attempts=0, embedding_model_id=None, chunk_count=0,
        promoted_to_source_id=fields.get("promoted_to_source_id"), created_by=fields.get("created_by"),
        created_at=now, updated_at=now, document_type=fields.get("document_type"), format=fields.get("format"),
        generation_error=fields.get("generation_error"), is_expired=False,
    )


@dataclass(slots=True)
class ChunkChange:
    """One write to the chunks of a shared catalog, as its change feed reports it."""

    change_id: int
    added_seqs: list[int]
    removed_ids: list[str]
    updated_ids: list[str]
    cleared: bool


@dataclass(slots=True)
class ChunkVector:
    """A chunk as the search cache holds it: seq, artifact version, length in terms, float32 vector bytes."""

    seq: int
    artifact_id: str
    n_terms: int
    embedding: bytes


JOB_COLUMNS = ("job_id", "artifact_id", "type", "status", "attempts", "error", "created_at", "started_at",
               "ended_at", "next_run_at")


def jobs_from_rows(rows: Iterable[Sequence[Any]]) -> list[Job]:
    """`Job`s from rows of JOB_COLUMNS; `next_run_at` only for a job still waiting to run."""
    jobs = []
    for r in rows:
        job = dict(zip(JOB_COLUMNS, r, strict=True))
        if job["status"] not in ("queued", "retrying"):
            job["next_run_at"] = None
        jobs.append(Job(**job))
    return jobs
