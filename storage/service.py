"""ArtifactStore: the synchronous core behind every tool (catalog + blobs, one lock, one writer).

Callers reach it through `storage.sharing.StoreClient`, which runs these methods on a worker thread
in the owning process, or forwards them over a local socket from any other process.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters
from pydantic import JsonValue

from artifact_mcp.storage import content as contentlib
from artifact_mcp.storage.blobs import BlobStore, blob_key
from artifact_mcp.storage.catalog import Catalog, to_us, utcnow
from artifact_mcp.storage.cursor import CursorCodec, Position, query_digest
from artifact_mcp.storage.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge
from artifact_mcp.storage.generate.engine import GenerationStore
from artifact_mcp.storage.index import chunking
from artifact_mcp.storage.index import filters as sqlfilters
from artifact_mcp.storage.index.embeddings import known_dim
from artifact_mcp.storage.index.lexical import LexicalIndex
from artifact_mcp.storage.index.pipeline import IndexConfig, Indexer, Prepared
from artifact_mcp.storage.index.search import ChunkRow, Ranked, build_context, rank
from artifact_mcp.storage.index.search_cache import SearchCache
from artifact_mcp.storage.index.vector_store import DuckDBChunkStore, not_expired
from artifact_mcp.storage.jobs import INDEX_JOB_TYPES, JobQueue
from artifact_mcp.storage.links import (
    DENIED,
    MAX_EXPIRES_IN,
    MIN_EXPIRES_IN,
    DownloadLink,
    DownloadTarget,
    LinkClaims,
    LinkSigner,
    download_file_name,
)
from artifact_mcp.storage.models import (
    Artifact,
    ArtifactFields,
    ArtifactPage,
    ArtifactPatch,
    ArtifactSummary,
    ChangeEvent,
    ContentBody,
    DeleteResult,
    FilePatch,
    JobList,
    ListQuery,
    NewArtifact,
    NewFileArtifact,
    PromoteRequest,
    PromoteResult,
    QueryHit,
    QueryRequest,
    QueryResult,
    Scope,
    StagedBlob,
    UpdateResult,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 50_000
# Fields copied from the previous version when a content change makes a new one.
_INHERITED = (
    "org_id", "workspace_id", "namespace_id", "thread_id", "name", "description", "artifact_type",
    "root_artifact_id", "summary", "keywords", "tags", "metadata", "source", "source_execution_id",
    "source_step_id", "source_tool", "scope", "status", "ttl_seconds", "is_pinned", "promoted_to_source_id",
    "file_name",
)


@dataclass
class IndexTask:
    job: dict[str, Any]
    row: dict[str, Any]


def new_artifact_id() -> str:
    return f"art_{uuid.uuid4().hex}"


def artifact_uri(artifact_id: str) -> str:
    return f"artifact://{artifact_id}"


# Artifact fields copied onto its chunks (search filters read them there); expires_at is derived.
_CHUNK_FIELDS = ("thread_id", "artifact_type", "tags")


def _index_owns_status(row: dict[str, Any]) -> bool:
    """Indexing drives `status` (pending -> processing -> ready/failed) except on a generated document, whose
    status belongs to its generation job (processing -> completed/failed); indexing it later leaves that alone."""
    return row.get("document_type") is None


def chunk_expiry(row: dict[str, Any]) -> datetime | None:
    """When a version's chunks stop being searchable: never while pinned."""
    return None if row.get("is_pinned") else row.get("expires_at")


class ArtifactStore(GenerationStore):
    def __init__(self, catalog: Catalog, blobs: BlobStore, *, max_content_bytes: int,
                 index: IndexConfig | None = None) -> None:
        self.catalog = catalog
        self.blobs = blobs
        self.max_content_bytes = max_content_bytes
        self.indexer = Indexer(index or IndexConfig())
        self._lock = threading.RLock()
        self._embedder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="query-embedding")
        cfg = self.indexer.config
        con = catalog.con
        self.jobs = JobQueue(con, max_attempts=cfg.max_attempts, backoff_seconds=cfg.retry_backoff_seconds)
        self.lexical = LexicalIndex(con)
        with self._lock:
            self.cursors = CursorCodec(catalog.secret("cursor_secret"))
            self.links = LinkSigner(catalog.secret("download_secret"))
            self.vectors = DuckDBChunkStore(con, dim=self._model_dim())
            self.cache = SearchCache(self.vectors.dim)
            self._prepare_index()

    def _model_dim(self) -> int:
        return known_dim(self.indexer.config.embedding_model) or self.indexer.model.dim

    def _prepare_index(self) -> None:
        """Match the stored index to the configured model (re-index everything when it changed) and requeue
        jobs a previous process left running."""
        now = utcnow()
        model_id = self.indexer.model_id
        stored = self.catalog.get_setting("embedding_model_id")
        with self.catalog.transaction():
            recreated = self.vectors.ensure_column()
            if stored is not None and (stored != model_id or recreated):
                log.warning("embedding model changed (%s -> %s): re-indexing every artifact", stored, model_id)
                self.con.execute("DELETE FROM postings")
                self.vectors.clear()
                self.con.execute(
                    "UPDATE jobs SET status = 'cancelled', error = 'embedding model changed', ended_at = ? "
                    "WHERE status IN ('queued', 'retrying', 'running') AND list_contains(?, type)",
                    [now, list(INDEX_JOB_TYPES)]
                )
                rows = self.con.execute(
                    "SELECT artifact_id, org_id, workspace_id, namespace_id FROM artifacts WHERE is_latest"
                ).fetchall()
                self.con.execute(
                    "UPDATE artifacts SET is_indexed = false, chunk_count = 0, index_collection = NULL, "
                    "embedding_model_id = NULL WHERE is_latest"
                )
                for r in rows:
                    self.jobs.enqueue(dict(zip(("artifact_id", "org_id", "workspace_id", "namespace_id"), r,
                                               strict=True)), now, "reindex")
            self.catalog.set_setting("embedding_model_id", model_id)
            recovered = self.jobs.recover(now)
        if recovered:
            log.info("requeued %d index jobs interrupted by a previous shutdown", recovered)

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.catalog.con

    def close(self) -> None:
        self._embedder.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self.catalog.close()

    # --- helpers ---------------------------------------------------------------------------------

    def _to_model(self, row: dict[str, Any], *, max_chars: int | None = None) -> Artifact:
        text = row.get("content_text") if max_chars != 0 else None
        truncated = False
        if text is not None and max_chars is not None and len(text) > max_chars:
            text, truncated = text[:max_chars], True
        kind = row.get("content_kind")
        if kind is None or text is None:
            content: JsonValue = None
        elif kind == "json" and truncated:
            content = None
        else:
            content = contentlib.text_to_content(kind, text)
        data = {k: v for k, v in row.items() if k not in ("content_kind", "blob_key", "content_text")}
        return Artifact(
            **data,
            content=content,
            content_text=text,
            content_truncated=truncated,
            uri=artifact_uri(row["artifact_id"]),
        )

    def _visible_row(
        self, scope: Scope, artifact_id: str, now: datetime, *, include_expired: bool = True
    ) -> dict[str, Any]:
        row = self.catalog.get(artifact_id, now)
        if row is None or (row["org_id"], row["workspace_id"], row["namespace_id"]) != (
            scope.org_id, scope.workspace_id, scope.namespace_id,
        ):
            raise NotFound(
                f"no artifact {artifact_id!r} in scope {scope.label()}; check the id with list_artifacts, "
                "or pass the org_id/workspace_id/namespace_id it was created in"
            )
        if row["is_expired"] and not include_expired:
            raise NotFound(
                f"artifact {artifact_id!r} expired at {row['expires_at'].isoformat()}Z; pass include_expired=true "
                "to read it before the sweeper removes it"
            )
        return row

    def _body(self, new_content: JsonValue, blob: tuple[str, str] | None, data: bytes | None,
              file_name: str | None, mime_type: str | None) -> dict[str, Any]:
        """Columns describing a version's content; `blob` is the staged (key, sha256) of `data`."""
        if data is not None and new_content is not None:
            raise InvalidInput("give either `content` or file bytes, not both")
        if data is None or blob is None:
            if new_content is None:
                raise InvalidInput("content is required: a string, or a JSON object/array")
            kind, text, default_mime = contentlib.content_to_text(new_content)
            try:
                size = len(text.encode())
            except UnicodeEncodeError:
                raise InvalidInput(
                    "content contains an unpaired surrogate (e.g. \\ud800), which is not valid Unicode text; "
                    "remove it, or send the bytes as a file with upload_artifact"
                ) from None
            if size > self.max_content_bytes:
                raise TooLarge(
                    f"content is {size} bytes, over the {self.max_content_bytes}-byte limit "
                    "(ARTIFACT_MCP_MAX_UPLOAD_BYTES); split it into several artifacts"
                )
            return {
                "content_kind": kind, "content_text": text, "content_preview": contentlib.preview(text),
                "mime_type": (mime_type or default_mime).lower(), "size_bytes": size, "sha256": None,
                "has_file": False, "blob_key": None, "file_name": file_name,
            }
        mime = contentlib.detect_mime(data, file_name, mime_type)
        text = contentlib.text_for(data, mime)
        key, digest = blob
        return {
            "content_kind": None, "content_text": text, "content_preview": contentlib.preview(text),
            "mime_type": mime, "size_bytes": len(data), "sha256": digest, "has_file": True,
            "blob_key": key, "file_name": file_name,
        }

    def _file_body(self, key: str, staged: StagedBlob, file_name: str | None,
                   mime_type: str | None) -> dict[str, Any]:
        """Columns describing a version whose bytes were streamed: only the head is read (mime sniffing, and text
        up to MAX_STREAM_TEXT_BYTES for text-like types)."""
        head = self.blobs.read_head(key, contentlib.SNIFF_BYTES)
        mime = contentlib.detect_mime(head, file_name, mime_type)
        text = None
        if contentlib.is_text_mime(mime):
            if staged.size_bytes > len(head):
                head = self.blobs.read_head(key, contentlib.MAX_STREAM_TEXT_BYTES)
            text = contentlib.text_of_prefix(head, mime, complete=len(head) >= staged.size_bytes)
        return {
            "content_kind": None, "content_text": text, "content_preview": contentlib.preview(text),
            "mime_type": mime, "size_bytes": staged.size_bytes, "sha256": staged.sha256, "has_file": True,
            "blob_key": key, "file_name": file_name,
        }

    @contextmanager
    def _adopted(self, staged: StagedBlob) -> Iterator[str]:
        """Move streamed bytes to their content address, pinned against the collector until the row referencing
        them has committed (the block's end); on failure leave no unreferenced bytes behind."""
        key = None
        try:
            with self.blobs.pinned(blob_key(staged.sha256)):
                key = self.blobs.adopt(staged)
                yield key
        except BaseException:
            self.blobs.discard(staged)
            if key is not None:
                with self._lock:
                    self.blobs.delete_unreferenced([key], self.catalog.referenced_blob_keys([key]))
            raise

    @contextmanager
    def _staged(self, data: bytes | None) -> Iterator[tuple[str, str] | None]:
        """Write file bytes before taking the lock (so a large upload doesn't stall everyone), shielded
        from the garbage collector until the row referencing them commits."""
        if data is None:
            yield None
            return
        key = None
        try:
            with self.blobs.staged(data) as staged:
                key = staged[0]
                yield staged
        except BaseException:
            # The write was refused (stale version, unknown id…): leave no unreferenced bytes behind.
            if key is not None:
                with self._lock:
                    self.blobs.delete_unreferenced([key], self.catalog.referenced_blob_keys([key]))
            raise

    @staticmethod
    def _descriptive(fields: ArtifactFields, *, only_set: bool) -> dict[str, Any]:
        """The descriptive columns; for a patch (`only_set`) just the ones it changes (None = keep)."""
        return fields.model_dump(include=set(ArtifactFields.model_fields), exclude_none=only_set)

    @staticmethod
    def _expiry(now: datetime, ttl_seconds: int | None) -> datetime | None:
        return now + timedelta(seconds=ttl_seconds) if ttl_seconds else None

    # --- operations ------------------------------------------------------------------------------

    def create(self, scope: Scope, new: NewArtifact, artifact_id: str | None = None) -> tuple[Artifact, ChangeEvent]:
        """Create version 1. A caller-chosen `artifact_id` makes a retried create return the same artifact."""
        artifact_id = artifact_id or new_artifact_id()
        with self._staged(new.data) as blob:
            # Content processing (mime sniffing, text extraction) needs no lock.
            body = self._body(new.content, blob, new.data, new.file_name, new.mime_type)
            return self._insert_first(scope, new, body, artifact_id)

    def create_from_blob(self, scope: Scope, new: NewFileArtifact, staged: StagedBlob,
                         artifact_id: str | None = None) -> tuple[Artifact, ChangeEvent]:
        """Create version 1 from bytes already streamed to the blob store (`BlobStore.stage_stream`): neither this
        process nor the socket between processes ever holds them whole. Retried with the same `artifact_id`, it
        returns the same artifact."""
        artifact_id = artifact_id or new_artifact_id()
        with self._adopted(staged) as key:
            body = self._file_body(key, staged, new.file_name, new.mime_type)
            return self._insert_first(scope, new, body, artifact_id)

    def _insert_first(self, scope: Scope, new: NewFileArtifact, body: dict[str, Any],
                      artifact_id: str) -> tuple[Artifact, ChangeEvent]:
        # The timestamp is taken under the lock so that created_at follows insertion order, which keeps list's time
        # windows tight.
        desc = self._descriptive(new, only_set=False)
        with self._lock:
            now = utcnow()
            row: dict[str, Any] = {
                **desc,
                "artifact_id": artifact_id, "org_id": scope.org_id, "workspace_id": scope.workspace_id,
                "namespace_id": scope.namespace_id, "name": new.name, "artifact_type": new.artifact_type,
                "version": 1, "root_artifact_id": artifact_id, "is_latest": True, "replaced_by_version": None,
                **body,
                "keywords": desc.get("keywords") or [], "tags": desc.get("tags") or [],
                "metadata": desc.get("metadata") or {}, "scope": desc.get("scope") or "namespace",
                "status": new.status or "pending", "expires_at": self._expiry(now, new.ttl_seconds),
                "is_pinned": bool(new.is_pinned), "is_indexed": False, "indexed_at": None,
                "index_collection": None, "index_error": None, "index_attempts": 0, "embedding_model_id": None,
                "chunk_count": 0, "promoted_to_source_id": None, "created_by": new.created_by,
                "created_at": now, "updated_at": now,
            }
            # No existence check up front: the primary key catches a retried id, and only then is the
            # existing row read. The row and its index job commit together.
            if not self._insert_with_job(row, now):
                existing = self.catalog.get(artifact_id, now)
                assert existing is not None
                if (existing["org_id"], existing["workspace_id"], existing["namespace_id"]) != (
                    scope.org_id, scope.workspace_id, scope.namespace_id,
                ) or existing["name"] != new.name:
                    raise Conflict(f"artifact id {artifact_id!r} is already taken")
                return self._to_model(existing), self._event("created", scope, existing["root_artifact_id"],
                                                              [artifact_id])
            row["is_expired"] = False
            return self._to_model(row, max_chars=0), self._event("created", scope, artifact_id, [artifact_id])

    def _insert_with_job(self, row: dict[str, Any], now: datetime) -> bool:
        try:
            with self.catalog.transaction():
                self.catalog.insert(row)
                self.jobs.enqueue(row, now)
        except duckdb.ConstraintException:
            if self.catalog.get(row["artifact_id"], now) is not None:
                return False
            raise
        return True

    def _unindex(self, artifact_ids: list[str]) -> None:
        """Remove versions' chunks and postings, and cancel their open jobs (inside the caller's transaction)."""
        self.lexical.delete_artifacts(artifact_ids)
        removed = self.vectors.delete_many(artifact_ids)
        if removed:
            self.cache.note_removed(removed)
        self.jobs.cancel_open(artifact_ids)

    def _write_version(self, row: dict[str, Any], replaced: dict[str, Any] | None) -> None:
        with self.catalog.transaction():
            if replaced is not None:
                self.catalog.update(
                    replaced["artifact_id"],
                    {"is_latest": False, "replaced_by_version": row["version"], "updated_at": row["created_at"]},
                )
                # Only the latest version is searchable: the replaced one leaves the index in this transaction.
                self._unindex([replaced["artifact_id"]])
            self.catalog.insert(row)
            self.jobs.enqueue(row, row["created_at"])

    def get(self, scope: Scope, artifact_id: str, include_expired: bool = False,
            max_chars: int = DEFAULT_MAX_CHARS) -> Artifact:
        with self._lock:
            row = self._visible_row(scope, artifact_id, utcnow(), include_expired=include_expired)
        return self._to_model(row, max_chars=max_chars)

    def list(self, scope: Scope, query: ListQuery) -> ArtifactPage:
        filters = query.model_dump(exclude={"cursor", "limit"})
        digest = query_digest({"scope": scope.model_dump(), "filters": filters})
        with self._lock:
            after = self.cursors.decode(query.cursor, digest) if query.cursor else None
            rows, total = self.catalog.list(scope, query, after, utcnow())
        has_more = len(rows) > query.limit
        rows = rows[: query.limit]
        next_cursor = None
        if has_more:
            last = rows[-1]
            next_cursor = self.cursors.encode(Position(to_us(last["created_at"]), last["artifact_id"]), digest)
        return ArtifactPage(
            artifacts=[self._to_model(r, max_chars=0) for r in rows], total=total, has_more=has_more,
            next_cursor=next_cursor,
        )

    def versions(self, scope: Scope, artifact_id: str) -> list[Artifact]:
        now = utcnow()
        with self._lock:
            row = self._visible_row(scope, artifact_id, now)
            rows = self.catalog.versions(row["root_artifact_id"], now)
        return [self._to_model(r, max_chars=0) for r in rows]

    def update(self, scope: Scope, artifact_id: str, patch: ArtifactPatch) -> tuple[UpdateResult, ChangeEvent]:
        with self._staged(patch.data) as blob:
            content_body = None
            if patch.changes_content():
                def content_body(file_name: str | None) -> dict[str, Any]:
                    return self._body(patch.content, blob, patch.data, file_name, patch.mime_type)
            return self._apply_update(scope, artifact_id, patch, content_body)

    def update_from_blob(self, scope: Scope, artifact_id: str, patch: FilePatch,
                         staged: StagedBlob) -> tuple[UpdateResult, ChangeEvent]:
        """A new version from bytes already streamed to the blob store (`BlobStore.stage_stream`), with the patch's
        field changes."""
        with self._adopted(staged) as key:
            return self._apply_update(scope, artifact_id, patch,
                                      lambda file_name: self._file_body(key, staged, file_name, patch.mime_type))

    def _apply_update(self, scope: Scope, artifact_id: str, patch: FilePatch,
                      content_body: Callable[[str | None], dict[str, Any]] | None) -> tuple[UpdateResult, ChangeEvent]:
        """Apply `patch`: in place, or as a new version whose content columns `content_body(file_name)` gives."""
        with self._lock:
            now = utcnow()  # under the lock, as in create: a new version's created_at follows insertion order
            row = self._visible_row(scope, artifact_id, now)
            latest = self.catalog.latest(row["root_artifact_id"], now)
            assert latest is not None
            if patch.expected_version is not None and patch.expected_version != latest["version"]:
                raise Conflict(
                    f"expected_version {patch.expected_version} is stale: the latest version is "
                    f"{latest['version']} (id {latest['artifact_id']}); re-read it and apply your change again"
                )
            changes = self._descriptive(patch, only_set=True)
            for key in ("name", "artifact_type", "status"):
                if getattr(patch, key) is not None:
                    changes[key] = getattr(patch, key)
            if "keywords" in changes:
                changes["keywords"] = changes["keywords"] or []
            if "tags" in changes:
                changes["tags"] = changes["tags"] or []
            if "metadata" in changes:
                changes["metadata"] = changes["metadata"] or {}
            if "is_pinned" in changes:
                changes["is_pinned"] = bool(changes["is_pinned"])
            if patch.clear_ttl:
                changes["ttl_seconds"] = None
                changes["expires_at"] = None
            elif patch.ttl_seconds is not None:
                changes["expires_at"] = self._expiry(now, patch.ttl_seconds)

            if content_body is None:
                if not changes:
                    raise InvalidInput("nothing to update: pass content, file bytes or at least one field to change")
                changes["updated_at"] = now
                with self.catalog.transaction():
                    self.catalog.update(latest["artifact_id"], changes)
                    fresh = self.catalog.get(latest["artifact_id"], now)
                    assert fresh is not None
                    synced = {k: fresh[k] for k in _CHUNK_FIELDS if k in changes}
                    if {"expires_at", "is_pinned", "ttl_seconds"} & changes.keys():
                        synced["expires_at"] = chunk_expiry(fresh)
                    self.vectors.set_fields([fresh["artifact_id"]], synced)
                    if {"name", "description", "summary", "keywords"} & changes.keys() and (
                        changes.get("name", latest["name"]) != latest["name"] or not fresh["chunk_count"]
                        or not fresh["content_text"]
                    ):
                        # The name heads every chunk's indexed text (and a file without text is indexed by its
                        # descriptive fields): refresh them. The old chunks stay searchable meanwhile.
                        self.jobs.enqueue(fresh, now, "reindex")
                return (
                    UpdateResult(artifact=self._to_model(fresh, max_chars=0), new_version=False),
                    self._event("updated", scope, latest["root_artifact_id"], [latest["artifact_id"]]),
                )

            if latest.get("document_type") and latest["status"] == "processing":
                # A new version would cancel the queued generation job and leave this one 'processing' for good.
                raise Conflict(
                    f"artifact {latest['artifact_id']} is a document still being generated; wait until its status "
                    "is 'completed' or 'failed' (get_artifact), then give it new content"
                )
            new_id = new_artifact_id()
            file_name = patch.file_name if patch.file_name is not None else latest["file_name"]
            body = content_body(file_name)
            row_new = {k: latest[k] for k in _INHERITED}
            row_new.update(changes)
            row_new.update(body)
            ttl = row_new["ttl_seconds"]
            if row_new["status"] != "archived":
                row_new["status"] = patch.status or "pending"
            row_new.update({
                "artifact_id": new_id, "version": latest["version"] + 1, "is_latest": True,
                "replaced_by_version": None, "expires_at": self._expiry(now, ttl), "is_indexed": False,
                "indexed_at": None, "index_collection": None, "index_error": None, "index_attempts": 0,
                "embedding_model_id": None, "chunk_count": 0,
                "created_by": patch.updated_by or latest["created_by"], "created_at": now, "updated_at": now,
            })
            self._write_version(row_new, replaced=latest)
            row_new["is_expired"] = False
            return (
                UpdateResult(artifact=self._to_model(row_new, max_chars=0), new_version=True),
                self._event("updated", scope, latest["root_artifact_id"], [latest["artifact_id"], new_id]),
            )

    def delete(self, scope: Scope, artifact_id: str, all_versions: bool = True) -> tuple[DeleteResult, ChangeEvent]:
        now = utcnow()
        with self._lock:
            row = self._visible_row(scope, artifact_id, now)
            root = row["root_artifact_id"]
            versions = self.catalog.versions(root, now)
            doomed = [v for v in versions if all_versions or v["artifact_id"] == artifact_id]
            result = self._delete_rows(root, versions, doomed, now)
        return result, self._event("deleted", scope, root, result.deleted_artifact_ids)

    def _delete_rows(self, root: str, versions: list[dict[str, Any]], doomed: list[dict[str, Any]],
                     now: datetime) -> DeleteResult:
        doomed_ids = {v["artifact_id"] for v in doomed}
        remaining = [v for v in versions if v["artifact_id"] not in doomed_ids]
        keys = [v["blob_key"] for v in doomed if v["blob_key"]]
        with self.catalog.transaction():
            self._unindex(sorted(doomed_ids))
            self.jobs.delete_for(sorted(doomed_ids))
            self.con.execute("DELETE FROM generations WHERE list_contains(?, artifact_id)", [sorted(doomed_ids)])
            self.catalog.delete(sorted(doomed_ids))
            if not remaining:
                self.con.execute("DELETE FROM sources WHERE root_artifact_id = ?", [root])
            # Re-link the survivors: each points at the next, the last becomes latest.
            for i, v in enumerate(remaining):
                nxt = remaining[i + 1]["version"] if i + 1 < len(remaining) else None
                if v["replaced_by_version"] != nxt or v["is_latest"] != (nxt is None):
                    fields: dict[str, Any] = {"replaced_by_version": nxt, "is_latest": nxt is None, "updated_at": now}
                    if nxt is None:
                        # An older version is latest again: it left the index when it was replaced, so index it.
                        fields.update({"is_indexed": False, "chunk_count": 0, "index_collection": None})
                        if v["status"] in ("ready", "failed"):
                            fields["status"] = "pending"
                        self.jobs.enqueue(v, now, "reindex")
                    self.catalog.update(v["artifact_id"], fields)
        removed = self.blobs.delete_unreferenced(keys, self.catalog.referenced_blob_keys(keys)) if keys else 0
        return DeleteResult(
            deleted_artifact_ids=sorted(doomed_ids), root_artifact_id=root, remaining_versions=len(remaining),
            blobs_removed=removed,
        )

    def locate(self, artifact_id: str) -> Scope | None:
        """The scope an artifact id lives in (for resource URIs, which carry no scope)."""
        with self._lock:
            row = self.catalog.get(artifact_id, utcnow())
        if row is None:
            return None
        return Scope(org_id=row["org_id"], workspace_id=row["workspace_id"], namespace_id=row["namespace_id"])

    def read_content(self, scope: Scope, artifact_id: str) -> ContentBody:
        with self._lock:
            row = self._visible_row(scope, artifact_id, utcnow(), include_expired=False)
        if row["has_file"]:
            data = self.blobs.get(row["blob_key"])
            text = contentlib.text_for(data, row["mime_type"])
            return ContentBody(artifact_id=artifact_id, mime_type=row["mime_type"], file_name=row["file_name"],
                               text=text, data=None if text is not None else data)
        return ContentBody(artifact_id=artifact_id, mime_type=row["mime_type"], file_name=row["file_name"],
                           text=row["content_text"])

    # --- download links ---------------------------------------------------------------------------

    def download_link(self, scope: Scope, artifact_id: str, expires_in: int, token_id: str | None,
                      issued_at: datetime | None = None) -> DownloadLink:
        """Sign a link to this artifact version, valid `expires_in` seconds from `issued_at` (default now; only a
        past clock is honoured, so a link can be made to expire earlier, never later)."""
        if not MIN_EXPIRES_IN <= expires_in <= MAX_EXPIRES_IN:
            raise InvalidInput(f"expires_in must be {MIN_EXPIRES_IN}-{MAX_EXPIRES_IN} seconds (1 minute to 1 day), "
                               f"not {expires_in}")
        now = utcnow()
        with self._lock:
            row = self._visible_row(scope, artifact_id, now, include_expired=False)
        if issued_at is not None and issued_at.tzinfo is not None:
            issued_at = issued_at.astimezone(UTC).replace(tzinfo=None)
        issued = min(issued_at or now, now)
        expires_at = issued + timedelta(seconds=expires_in)
        token = self.links.sign(LinkClaims(artifact_id=artifact_id, version=row["version"],
                                           expires=to_us(expires_at) // 1_000_000, token_id=token_id))
        return DownloadLink(
            token=token, artifact_id=artifact_id, version=row["version"], scope=scope,
            expires_at=expires_at.replace(microsecond=0), expires_in=expires_in,
            file_name=download_file_name(row["file_name"], row["name"], row["mime_type"]),
            content_type=row["mime_type"], size_bytes=row["size_bytes"], blob_key=row["blob_key"],
        )

    def resolve_download(self, token: str) -> DownloadTarget:
        """What a link serves, once its signature and expiry check out and its artifact version still exists (and
        has not expired); Forbidden with one generic message otherwise."""
        claims = self.links.verify(token, time.time())
        now = utcnow()
        with self._lock:
            # Without content_text (a streamed text file's can be 16 MiB): only text/JSON content needs it.
            row = self.catalog.get_many([claims.artifact_id], now).get(claims.artifact_id)
            if row is not None and not row["has_file"]:
                row = self.catalog.get(claims.artifact_id, now)
        if row is None or row["version"] != claims.version or row["is_expired"]:
            raise Forbidden(DENIED)
        return self._download_target(row, claims.token_id)

    def download_target(self, scope: Scope, artifact_id: str) -> DownloadTarget:
        """What a download of this version serves (for routes that authenticate the caller themselves): the bytes
        are then streamed from the blob store, never loaded whole."""
        with self._lock:
            row = self._visible_row(scope, artifact_id, utcnow(), include_expired=False)
        return self._download_target(row, None)

    @staticmethod
    def _download_target(row: dict[str, Any], token_id: str | None) -> DownloadTarget:
        text = None if row["has_file"] else (row["content_text"] or "")
        return DownloadTarget(
            artifact_id=row["artifact_id"], version=row["version"],
            scope=Scope(org_id=row["org_id"], workspace_id=row["workspace_id"], namespace_id=row["namespace_id"]),
            token_id=token_id, file_name=download_file_name(row["file_name"], row["name"], row["mime_type"]),
            content_type=row["mime_type"], size_bytes=len(text.encode()) if text is not None else row["size_bytes"],
            sha256=row["sha256"], blob_key=row["blob_key"], text=text,
        )

    # --- indexing (the job runner's steps) -------------------------------------------------------

    def claim_index_jobs(self, limit: int) -> list[IndexTask]:
        """Mark due jobs running and snapshot their artifact rows."""
        now = utcnow()
        tasks: list[IndexTask] = []
        with self._lock:
            for job in self.jobs.claim(now, limit):
                row = self.catalog.get(job["artifact_id"], now)
                if row is None or not row["is_latest"]:
                    self.jobs.cancel(job["job_id"], now, "artifact version replaced or deleted")
                    continue
                fields: dict[str, Any] = {"index_attempts": row["index_attempts"] + 1}
                if not row["is_indexed"] and row["status"] in ("pending", "failed") and _index_owns_status(row):
                    fields["status"] = "processing"
                self.catalog.update(row["artifact_id"], fields)
                tasks.append(IndexTask(job=job, row=row))
        return tasks

    def warm_up(self) -> None:
        """Load the embedding model and the chunkers (seconds, the first time) before the first job needs them."""
        try:
            chunking.split("Warm up. The chunkers load tokenizers on first use.", "text/plain")
            self.indexer.embed_query("warm up")
        except Exception:
            log.exception("warming up the index pipeline failed; the first index job will retry the load")

    def next_job_due(self) -> datetime | None:
        with self._lock:
            return self.jobs.next_due()

    def _index_text(self, row: dict[str, Any]) -> tuple[str | None, str | None]:
        """(text to index, text newly extracted from a file for content_text)."""
        if row["content_text"] is not None:
            return row["content_text"], None
        if (row["has_file"] and row["mime_type"].split(";")[0].strip() == "application/pdf"
                and row["size_bytes"] <= contentlib.MAX_PDF_EXTRACT_BYTES):
            text = contentlib.extract_pdf_text(self.blobs.get(row["blob_key"]))
            return text, text
        return None, None

    def prepare_index(self, tasks: list[IndexTask]) -> list[Prepared]:
        """Extract, chunk and embed (no lock: this is the slow part). Errors are per task; one embedding batch
        serves all tasks, because the model is several times faster on a batch than on one chunk at a time."""
        out: list[Prepared] = []
        for task in tasks:
            try:
                text, extracted = self._index_text(task.row)
                out.append(Prepared(chunks=self.indexer.prepare(task.row, text), extracted_text=extracted))
            except Exception as exc:
                out.append(Prepared(chunks=[], error=f"{type(exc).__name__}: {exc}"))
        ok = [p for p in out if p.error is None]
        try:
            vectors = self.indexer.embed([c.embed_text for p in ok for c in p.chunks])
        except Exception as exc:
            log.warning("embedding failed for %d artifacts: %s", len(ok), exc)
            for p in ok:
                p.error = f"embedding failed: {type(exc).__name__}: {exc}"
            return out
        start = 0
        for p in ok:
            p.vectors = vectors[start:start + len(p.chunks)]
            start += len(p.chunks)
        return out

    def commit_index(self, tasks: list[IndexTask], prepared: list[Prepared]) -> list[ChangeEvent]:
        """Write each task's chunks, index fields and job outcome: one transaction for the batch (a commit costs
        more than a small insert)."""
        now = utcnow()
        added: list[tuple[str, list[int], Prepared]] = []
        with self._lock:
            with self.catalog.transaction():
                events = self._commit_batch(tasks, prepared, now, added)
            # After the commit, so the in-memory mirror never holds a chunk the catalog does not.
            for artifact_id, seqs, prep in added:
                assert prep.vectors is not None
                self.cache.add(artifact_id, seqs, prep.vectors, [c.n_terms for c in prep.chunks],
                               [(c.terms, c.tfs) for c in prep.chunks])
        return events

    def _commit_batch(self, tasks: list[IndexTask], prepared: list[Prepared], now: datetime,
                      added: list[tuple[str, list[int], Prepared]]) -> list[ChangeEvent]:
        events: list[ChangeEvent] = []
        for task, prep in zip(tasks, prepared, strict=True):
            job_id = task.job["job_id"]
            if not self.jobs.is_running(job_id):
                continue  # cancelled meanwhile (replaced, deleted, model changed)
            row = self.catalog.get(task.row["artifact_id"], now)
            if row is None or not row["is_latest"]:
                self.jobs.cancel(job_id, now, "artifact version replaced or deleted")
                continue
            if prep.error is not None:
                self._record_failure(task, row, prep.error, now)
            else:
                added.append((row["artifact_id"], self._write_chunks(task, row, prep, now), prep))
            scope = Scope(org_id=row["org_id"], workspace_id=row["workspace_id"], namespace_id=row["namespace_id"])
            events.append(self._event("updated", scope, row["root_artifact_id"], [row["artifact_id"]]))
        return events

    def _record_failure(self, task: IndexTask, row: dict[str, Any], error: str, now: datetime) -> None:
        error = error[:2000]
        retrying = self.jobs.fail(task.job["job_id"], task.job["attempts"], error, now)
        fields: dict[str, Any] = {"index_error": error}
        if row["status"] == "processing" and _index_owns_status(row):
            fields["status"] = "pending" if retrying else "failed"
        self.catalog.update(row["artifact_id"], fields)
        log.warning("index job %s for %s failed (attempt %d, %s): %s", task.job["job_id"], row["artifact_id"],
                    task.job["attempts"], "will retry" if retrying else "giving up", error)

    def _write_chunks(self, task: IndexTask, row: dict[str, Any], prep: Prepared, now: datetime) -> list[int]:
        """Replace the version's chunks and postings (in the caller's transaction); the new chunks' seqs."""
        aid = row["artifact_id"]
        collection = "sources" if row["promoted_to_source_id"] else "artifacts"
        n = len(prep.chunks)
        had_chunks = row["chunk_count"] or self.con.execute(
            "SELECT 1 FROM chunks WHERE artifact_id = ? LIMIT 1", [aid]
        ).fetchone()
        if had_chunks:
            # Re-indexing: the old chunks go first. (A first index skips this: deleting postings scans them.)
            self.lexical.delete_artifacts([aid])
            self.cache.note_removed(self.vectors.delete_many([aid]))
        seqs = [r[0] for r in self.con.execute("SELECT nextval('chunk_seq') FROM range(?)", [n]).fetchall()]
        shared = {
            "artifact_id": aid, "root_artifact_id": row["root_artifact_id"], "version": row["version"],
            "org_id": row["org_id"],
            "workspace_id": row["workspace_id"], "namespace_id": row["namespace_id"],
            "thread_id": row["thread_id"], "artifact_type": row["artifact_type"], "tags": row["tags"],
            "collection": collection, "expires_at": chunk_expiry(row),
        }
        assert prep.vectors is not None
        nodes = [
            TextNode(id_=f"{aid}:{c.index}", text=c.text, start_char_idx=c.start, end_char_idx=c.end,
                     embedding=prep.vectors[i].tolist(),
                     metadata={**shared, "seq": seqs[i], "chunk_index": c.index, "n_terms": c.n_terms})
            for i, c in enumerate(prep.chunks)
        ]
        self.vectors.add(nodes)
        terms: list[int] = []
        seq_col: list[int] = []
        tfs: list[int] = []
        for seq, c in zip(seqs, prep.chunks, strict=True):
            terms += c.terms
            seq_col += [seq] * len(c.terms)
            tfs += c.tfs
        self.lexical.add(terms, seq_col, tfs)
        fields: dict[str, Any] = {
            "is_indexed": True, "indexed_at": now, "index_error": None, "chunk_count": n,
            "index_collection": collection, "embedding_model_id": self.indexer.model_id,
        }
        if prep.extracted_text is not None and row["content_text"] is None:
            fields["content_text"] = prep.extracted_text
            fields["content_preview"] = contentlib.preview(prep.extracted_text)
        if row["status"] in ("pending", "processing", "failed") and _index_owns_status(row):
            fields["status"] = "ready"
        self.catalog.update(aid, fields)
        self.jobs.succeed(task.job["job_id"], now)
        return seqs

    # --- recall ------------------------------------------------------------------------------------

    @staticmethod
    def _query_filters(scope: Scope, req: QueryRequest, now: datetime) -> MetadataFilters:
        own: list[Any] = [
            MetadataFilter(key="org_id", value=scope.org_id),
            MetadataFilter(key="workspace_id", value=scope.workspace_id),
            MetadataFilter(key="namespace_id", value=scope.namespace_id),
        ]
        if req.thread_id is not None:
            own.append(MetadataFilter(key="thread_id", value=req.thread_id))
        where: MetadataFilters | MetadataFilter = MetadataFilters(filters=own, condition=FilterCondition.AND)
        if req.include_sources:
            # Promoted sources are shared with the whole workspace, whatever their namespace or thread.
            sources = MetadataFilters(filters=[
                MetadataFilter(key="collection", value="sources"), MetadataFilter(key="org_id", value=scope.org_id),
                MetadataFilter(key="workspace_id", value=scope.workspace_id),
            ], condition=FilterCondition.AND)
            where = MetadataFilters(filters=[where, sources], condition=FilterCondition.OR)
        parts: list[Any] = [where, not_expired(now)]
        if req.artifact_types:
            parts.append(MetadataFilter(key="artifact_type", operator=FilterOperator.IN,
                                        value=list(req.artifact_types)))
        if req.tags:
            parts.append(MetadataFilter(key="tags", operator=FilterOperator.ALL, value=list(req.tags)))
        return MetadataFilters(filters=parts, condition=FilterCondition.AND)

    def query(self, scope: Scope, req: QueryRequest) -> QueryResult:
        cfg = self.indexer.config
        # Embedding the query (~15 ms with MiniLM) runs on its own thread while the SQL filter and BM25 run here:
        # torch releases the GIL.
        vector = self._embedder.submit(self.indexer.embed_query, req.query) if req.mode != "keyword" else None
        terms = self.lexical.query_terms(req.query) if req.mode != "semantic" else []
        now = utcnow()
        where, params = sqlfilters.to_sql(self._query_filters(scope, req, now))
        depth = max(cfg.candidates, 5 * req.top_k)
        with self._lock:
            ranked, artifact_of, seq_of = self._retrieve(req.mode, vector, terms, where, params, depth)
            if req.min_score is not None:
                ranked = [r for r in ranked if r.score >= req.min_score]
            total = len(ranked)
            ranked = ranked[: req.top_k]
            ids = [artifact_of(r.segment) for r in ranked]
            rows = self.catalog.get_many(ids, now) if ids else {}
            seqs = [seq_of(r.best_row) for r in ranked]
            chunk_rows = {
                r[0]: ChunkRow(*r) for r in self.con.execute(
                    "SELECT seq, artifact_id, chunk_index, start_char, end_char, text, collection FROM chunks "
                    f"WHERE seq IN ({', '.join('?' for _ in seqs)})", seqs
                ).fetchall()
            } if seqs else {}
        results: list[QueryHit] = []
        for r, artifact_id, seq in zip(ranked, ids, seqs, strict=True):
            row, chunk = rows.get(artifact_id), chunk_rows.get(seq)
            if row is None or chunk is None:
                continue
            summary = ArtifactSummary(**{k: row[k] for k in ArtifactSummary.model_fields if k != "uri"},
                                      uri=artifact_uri(row["artifact_id"]))
            results.append(QueryHit(
                artifact=summary, score=round(r.score, 6), matched_chunk=chunk.text, chunk_index=chunk.chunk_index,
                chunk_start=chunk.start, chunk_end=chunk.end, from_source=chunk.collection == "sources",
            ))
        context, used = build_context(
            [(h.artifact.name, h.artifact.artifact_id, h.artifact.version, h.matched_chunk) for h in results],
            req.max_context_tokens,
        )
        return QueryResult(query=req.query, mode=req.mode, results=results, combined_context=context,
                           total_results=total, context_tokens=used)

    def _retrieve(self, mode: str, vector: Future[np.ndarray] | None, terms: list[int], where: str,
                  params: list[Any], depth: int) -> tuple[list[Ranked], Callable[[int], str], Callable[[int], int]]:
        """Ranked artifacts among the chunks `where` admits (the SQL filter decides eligibility; the in-memory
        mirror scores exactly those), with lookups from segment to artifact id and from row to chunk seq."""
        cache = self.cache
        if not cache.loaded:
            cache.load(self.con)
        seqs = self.con.execute(f"SELECT seq FROM chunks WHERE {where}", params).fetchnumpy()["seq"]
        eligible = cache.eligible(seqs)
        if eligible is None:
            log.warning("search cache was stale; reloading it")
            cache.load(self.con)
            eligible = cache.eligible(seqs)
            assert eligible is not None, "the search cache misses chunks right after a reload"
        cfg = self.indexer.config
        lexical = cache.bm25(terms, eligible, cfg.bm25_k1, cfg.bm25_b) if mode != "semantic" and eligible.n else None
        dense = cache.dense(vector.result(), eligible) if vector is not None and eligible.n else None
        ranked = rank(mode, dense, lexical, cfg, depth) if eligible.n else []
        arts = eligible.artifacts
        return ranked, (lambda seg: cache.artifact_id(int(arts[seg]))), cache.seq

    def promote(self, scope: Scope, artifact_id: str, req: PromoteRequest) -> tuple[PromoteResult, ChangeEvent]:
        now = utcnow()
        with self._lock:
            row = self._visible_row(scope, artifact_id, now, include_expired=False)
            latest = self.catalog.latest(row["root_artifact_id"], now)
            assert latest is not None
            root = latest["root_artifact_id"]
            event = self._event("updated", scope, root, [latest["artifact_id"]])
            if latest["promoted_to_source_id"]:
                found = self.con.execute(
                    "SELECT source_id, source_name FROM sources WHERE source_id = ?", [latest["promoted_to_source_id"]]
                ).fetchone()
                if found:
                    return PromoteResult(
                        artifact_id=latest["artifact_id"], source_id=found[0], source_name=found[1],
                        already_promoted=True, message=f"already a knowledge source ({found[0]}); nothing changed",
                    ), event
            source_id = f"src_{uuid.uuid4().hex}"
            name = req.source_name or latest["name"]
            with self.catalog.transaction():
                self.con.execute(
                    "INSERT INTO sources VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [source_id, root, latest["artifact_id"], name, req.description, scope.org_id, scope.workspace_id,
                     scope.namespace_id, now],
                )
                for v in self.catalog.versions(root, now):
                    self.catalog.update(v["artifact_id"], {"promoted_to_source_id": source_id, "updated_at": now})
                fields: dict[str, Any] = {"is_pinned": True, "ttl_seconds": None, "expires_at": None}
                if latest["is_indexed"]:
                    fields["index_collection"] = "sources"
                self.catalog.update(latest["artifact_id"], fields)
                self.vectors.set_fields([latest["artifact_id"]], {"collection": "sources", "expires_at": None})
            return PromoteResult(
                artifact_id=latest["artifact_id"], source_id=source_id, source_name=name, already_promoted=False,
                message=f"promoted to knowledge source {source_id!r}: pinned (no expiry) and searchable from every "
                        f"namespace of workspace {scope.workspace_id!r}",
            ), event

    def list_jobs(self, scope: Scope, artifact_id: str) -> JobList:
        now = utcnow()
        with self._lock:
            row = self._visible_row(scope, artifact_id, now)
            ids = [v["artifact_id"] for v in self.catalog.versions(row["root_artifact_id"], now)]
            jobs = self.jobs.for_artifacts(ids)
        return JobList(artifact_id=artifact_id, root_artifact_id=row["root_artifact_id"], jobs=jobs)

    # --- housekeeping ----------------------------------------------------------------------------

    def sweep_expired(self) -> list[ChangeEvent]:
        """Delete expired versions; an artifact whose latest version expired goes entirely."""
        now = utcnow()
        events: list[ChangeEvent] = []
        with self._lock:
            roots = {root for _, root in self.catalog.expired(now)}
            for root in roots:
                versions = self.catalog.versions(root, now)
                if not versions:
                    continue
                latest_expired = versions[-1]["is_expired"]
                doomed = versions if latest_expired else [v for v in versions if v["is_expired"]]
                result = self._delete_rows(root, versions, doomed, now)
                v0 = versions[0]
                scope = Scope(org_id=v0["org_id"], workspace_id=v0["workspace_id"], namespace_id=v0["namespace_id"])
                events.append(self._event("deleted", scope, root, result.deleted_artifact_ids))
        if events:
            log.info("ttl sweeper removed %d artifacts' expired versions", len(events))
        return events

    def collect_garbage(self) -> int:
        """Remove blobs no row references, and dead temporary files.

        Listing the blob store can be slow, so it happens outside the lock; only the final check of
        the candidates against the catalog (and against in-flight writes) and their deletion hold it."""
        keys = list(self.blobs.iter_keys())
        with self._lock:
            removed = self.blobs.delete_unreferenced(keys, self.catalog.referenced_blob_keys(keys)) if keys else 0
        removed += self.blobs.clean_tmp()
        if removed:
            log.info("blob gc removed %d files", removed)
        return removed

    @staticmethod
    def _event(kind: str, scope: Scope, root: str, ids: list[str]) -> ChangeEvent:
        return ChangeEvent(kind=kind, scope=scope, root_artifact_id=root, artifact_ids=ids)  # type: ignore[arg-type]
