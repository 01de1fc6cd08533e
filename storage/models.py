"""Pydantic models shared by the storage layer, the MCP tools and (later) the REST mirror.

They are the single source of truth for field names, limits and documentation: tool input
schemas and output schemas are generated from these classes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
)

from artifact_mcp.storage.text import CleanInput, Label, Prose, SafeFileName

# --- limits (also quoted in error messages, so an agent knows what to change) -------------------

MAX_NAME_CHARS = 512
MAX_DESCRIPTION_CHARS = 10_000
MAX_SUMMARY_CHARS = 20_000
MAX_TAGS = 64
MAX_TAG_CHARS = 64
MAX_KEYWORDS = 64
MAX_KEYWORD_CHARS = 128
MAX_METADATA_BYTES = 64 * 1024
MAX_TTL_SECONDS = 10 * 365 * 24 * 3600
MAX_PROVENANCE_CHARS = 256  # source*, created_by, updated_by
PREVIEW_CHARS = 500
DEFAULT_MAX_CHARS = 50_000  # content characters a read returns unless it asks for fewer or more

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
ARTIFACT_ID_PATTERN = r"^art_[0-9a-f]{32}$"

ScopeId = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN),
    Field(description="Letters, digits, '_', '.', ':' or '-'; 1-128 characters."),
]
ArtifactId = Annotated[
    str,
    StringConstraints(pattern=ARTIFACT_ID_PATTERN),
    Field(description="An artifact version id as returned by create/list, e.g. 'art_3f2a…' (36 chars)."),
]
# completed: a generated document (generate_artifact) whose job has written it.
ArtifactStatus = Literal["pending", "processing", "ready", "completed", "failed", "archived"]
Visibility = Literal["namespace", "workspace", "org"]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_CHARS, strip_whitespace=True), Label]
Keyword = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEYWORD_CHARS, strip_whitespace=True), Label]
ArtifactType = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"),
    Field(description="Kind of artifact, e.g. 'report', 'summary', 'transcript', 'json', 'code', 'file'."),
]
Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME_CHARS, strip_whitespace=True),
    Label,
    Field(description=f"Human-readable name, 1-{MAX_NAME_CHARS} characters."),
]


def _check_metadata(value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ValueError("metadata contains an unpaired surrogate (e.g. \\ud800), which is not valid Unicode "
                         "text; remove it") from None
    if value is not None and len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is larger than {MAX_METADATA_BYTES} bytes once serialized; store bulk data "
                         "as the artifact's content instead")
    return value


Metadata = Annotated[dict[str, JsonValue], AfterValidator(_check_metadata)]
Provenance = Annotated[str | None, Field(max_length=MAX_PROVENANCE_CHARS), Label]
# Stored as given after reduction to a safe base name (storage/text.py); the limit applies to what was sent.
FileNameField = Annotated[Annotated[str, Field(max_length=MAX_NAME_CHARS)] | None, SafeFileName]
MimeType = Annotated[str | None, Field(max_length=255), Label]


class Scope(BaseModel):
    """Tenant scope: every artifact lives in exactly one org / workspace / namespace."""

    model_config = ConfigDict(frozen=True)

    org_id: ScopeId
    workspace_id: ScopeId
    namespace_id: ScopeId

    def label(self) -> str:
        return f"{self.org_id}/{self.workspace_id}/{self.namespace_id}"


class ArtifactFields(CleanInput):
    """Descriptive fields an agent may set on create and change on update."""

    description: Annotated[str | None, Field(max_length=MAX_DESCRIPTION_CHARS), Prose] = None
    thread_id: ScopeId | None = Field(None, description="Conversation/thread this artifact belongs to.")
    summary: Annotated[str | None, Field(max_length=MAX_SUMMARY_CHARS), Prose] = None
    keywords: Annotated[list[Keyword] | None, Field(max_length=MAX_KEYWORDS)] = None
    tags: Annotated[list[Tag] | None, Field(max_length=MAX_TAGS,
                                            description=f"Up to {MAX_TAGS} tags for filtering.")] = None
    metadata: Metadata | None = Field(None, description="Free JSON object, at most 64 KiB serialized.")
    source: Annotated[Provenance, Field(description="Where it came from, e.g. 'agent'.")] = None
    source_execution_id: Provenance = None
    source_step_id: Provenance = None
    source_tool: Provenance = None
    scope: Visibility | None = Field(None, description="Visibility level recorded on the artifact.")
    ttl_seconds: Annotated[int | None, Field(ge=1, le=MAX_TTL_SECONDS,
                                             description="Expire this many seconds after the write.")] = None
    is_pinned: bool | None = Field(None, description="Pinned artifacts never expire.")


class NewFileArtifact(ArtifactFields):
    """A new artifact whose bytes are streamed to the blob store (`StoreClient.create_from_stream`)."""

    name: Name
    artifact_type: ArtifactType = "document"
    # None: 'pending' until the index job has run, then 'ready' (or 'failed').
    status: ArtifactStatus | None = None
    file_name: FileNameField = None
    mime_type: MimeType = None
    created_by: Provenance = None


class NewArtifact(NewFileArtifact):
    """Everything the service needs to create an artifact (from JSON content or from bytes)."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    content: JsonValue = None
    data: bytes | None = None


class FilePatch(ArtifactFields):
    """A new version from bytes streamed to the blob store (`StoreClient.update_from_stream`), with field changes."""

    name: Name | None = None
    artifact_type: ArtifactType | None = None
    status: ArtifactStatus | None = None
    file_name: FileNameField = None
    mime_type: MimeType = None
    clear_ttl: bool = False
    expected_version: int | None = Field(None, ge=1)
    updated_by: Provenance = None


class ArtifactPatch(FilePatch):
    """An update. Content (`content` or `data`) makes a new version; anything else updates in place."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    content: JsonValue = None
    data: bytes | None = None

    def changes_content(self) -> bool:
        return self.content is not None or self.data is not None


class StagedBlob(BaseModel):
    """Bytes streamed to a temporary blob key, not yet moved to their content address (see BlobStore.stage_stream)."""

    tmp_key: str
    sha256: str
    size_bytes: int = Field(ge=0)


ListOrder = Literal["newest", "oldest"]  # by created_at (then id)


class ListQuery(CleanInput):
    """Filters and page position for listing artifacts."""

    thread_id: ScopeId | None = None
    artifact_types: list[ArtifactType] | None = None
    status: ArtifactStatus | None = None
    tags: Annotated[list[Tag] | None, Field(max_length=MAX_TAGS)] = None
    created_by: Provenance = None
    include_expired: bool = False
    latest_only: bool = True
    promoted_only: bool = False
    order: ListOrder = "newest"
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    cursor: Annotated[str | None, Field(max_length=4096)] = None


class ThreadSummary(BaseModel):
    """One thread of a scope: how many latest artifacts it holds and when it was last written to."""

    thread_id: str
    artifacts: int
    first_at: datetime
    last_at: datetime


class Artifact(BaseModel):
    """One artifact version, as stored in the catalog."""

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
    content: JsonValue = Field(None, description="The JSON content (text or structured) for created artifacts.")
    content_preview: str | None
    content_text: str | None = Field(None, description="Extracted text (may be truncated, see content_truncated).")
    content_truncated: bool = False
    file_name: str | None
    mime_type: str
    size_bytes: int
    sha256: str | None
    has_file: bool
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
    is_expired: bool
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
    document_type: str | None = Field(None, description="For generated documents: summary, report, transcript, digest.")
    format: str | None = Field(None, description="For generated documents: markdown, html, json or pdf.")
    generation_error: str | None = Field(None, description="Why generating this document failed (status 'failed').")
    uri: str = Field(description="MCP resource URI of this version's metadata.")

    @field_validator("expires_at", "indexed_at", "created_at", "updated_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        # The catalog stores naive UTC; JSON consumers need the offset (RFC 3339 date-time).
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class _Page(BaseModel):
    total: int = Field(description="Number of artifacts matching the filters (all pages).")
    has_more: bool
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page.")


class ArtifactPage(_Page):
    """A page of whole artifacts (the REST dialect's listing)."""

    artifacts: list[Artifact]


class UpdateResult(BaseModel):
    artifact: Artifact
    new_version: bool = Field(description="True when the content changed and a new version was created.")


class ChangeEvent(BaseModel):
    """What changed, for notifications: `uris` were updated; `list_changed` when artifacts came or went."""

    kind: Literal["created", "updated", "deleted"]
    scope: Scope
    root_artifact_id: str
    artifact_ids: list[str]


class DeleteResult(BaseModel):
    deleted_artifact_ids: list[str]
    root_artifact_id: str
    remaining_versions: int
    blobs_removed: int


class ContentBody(BaseModel):
    """Raw content of one version, for resources/read and downloads."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    artifact_id: str
    mime_type: str
    file_name: str | None
    text: str | None = None
    data: bytes | None = None


# --- recall: query, jobs, sources ---------------------------------------------------------------

QueryMode = Literal["hybrid", "semantic", "keyword"]
MAX_QUERY_CHARS = 4000


class QueryRequest(CleanInput):
    """A search over the caller's artifacts (and, by default, the workspace's promoted sources)."""

    query: Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS, strip_whitespace=True),
                     Prose] = Field(
        description="What to look for, in natural language or keywords/identifiers."
    )
    top_k: Annotated[int, Field(ge=1, le=100, description="How many artifacts to return (1-100).")] = 10
    thread_id: ScopeId | None = Field(None, description="Only artifacts of this thread (sources are exempt).")
    artifact_types: Annotated[list[ArtifactType] | None, Field(max_length=64)] = Field(
        None, description="Only these artifact types."
    )
    tags: Annotated[list[Tag] | None, Field(max_length=MAX_TAGS)] = Field(
        None, description="Only artifacts carrying all of these tags."
    )
    include_sources: bool = Field(
        True, description="Also search sources promoted anywhere in the workspace (any namespace or thread)."
    )
    min_score: Annotated[float | None, Field(ge=0, le=1)] = Field(
        None, description="Drop results scoring below this (scores are 0-1, best first)."
    )
    mode: QueryMode = Field("hybrid", description="'hybrid' (default, best), 'semantic' (meaning) or 'keyword' (BM25).")
    max_context_tokens: Annotated[int, Field(ge=0, le=32_000)] = Field(
        2000, description="Token budget of combined_context (0 = no context)."
    )


class ArtifactSummary(BaseModel):
    """An artifact's card: the metadata to choose it by, without content, provenance or index details (read those
    with get_artifact). A listing's item and a search hit's artifact. A card, not the whole row, because a client
    checks every field of every item against the output schema: the MCP Python client's jsonschema takes ~4.6 us
    per field per item, 11.6 ms for a page of 50 whole artifacts (50 fields) against 4.7 ms for 50 cards."""

    artifact_id: str
    root_artifact_id: str
    version: int
    is_latest: bool
    name: str
    description: str | None
    artifact_type: str
    thread_id: str | None
    org_id: str
    workspace_id: str
    namespace_id: str
    mime_type: str
    size_bytes: int
    status: str
    tags: list[str]
    summary: str | None
    content_preview: str | None
    is_pinned: bool
    expires_at: datetime | None
    is_expired: bool
    is_indexed: bool
    chunk_count: int
    promoted_to_source_id: str | None
    created_at: datetime
    updated_at: datetime
    uri: str

    @field_validator("expires_at", "created_at", "updated_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class SummaryPage(_Page):
    """A page of artifact cards (the MCP listing: read one whole with get_artifact)."""

    artifacts: list[ArtifactSummary]


class QueryHit(BaseModel):
    artifact: ArtifactSummary
    score: float = Field(description="Relevance 0-1 relative to this query's candidates (1 = best).")
    matched_chunk: str = Field(description="The chunk of the artifact that matched best.")
    chunk_index: int
    chunk_start: int = Field(description="Character offset of the chunk in the artifact's text (content_text).")
    chunk_end: int
    from_source: bool = Field(description="True when the hit is a promoted source.")


class QueryResult(BaseModel):
    query: str
    mode: QueryMode
    results: list[QueryHit]
    combined_context: str = Field(
        description="The best chunks within max_context_tokens, each headed by its artifact's name and id for citing."
    )
    total_results: int = Field(description="Artifacts with evidence (a query term, or a dense similarity above "
                                           "the model's floor) above min_score, before top_k.")
    context_tokens: int


JobStatus = Literal["queued", "running", "retrying", "succeeded", "failed", "cancelled"]


class Job(BaseModel):
    job_id: str
    artifact_id: str
    type: str
    status: JobStatus
    attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    next_run_at: datetime | None = Field(None, description="When a queued or retrying job runs next.")

    @field_validator("created_at", "started_at", "ended_at", "next_run_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class JobList(BaseModel):
    artifact_id: str
    root_artifact_id: str
    jobs: list[Job] = Field(description="Jobs of every version of the artifact, newest first.")


class PromoteRequest(CleanInput):
    source_name: Annotated[str | None, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS,
                                                         strip_whitespace=True), Label] = Field(
        None, description="Name of the knowledge source (default: the artifact's name)."
    )
    description: Annotated[str | None, Field(max_length=MAX_DESCRIPTION_CHARS), Prose] = None


class PromoteResult(BaseModel):
    artifact_id: str
    source_id: str
    source_name: str
    message: str
    already_promoted: bool
