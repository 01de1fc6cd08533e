"""ArtifactStore: the synchronous core behind every tool (catalog + blobs, one lock, one writer).

Callers reach it through `storage.sharing.StoreClient`, which runs these methods on a worker thread
in the owning process, or forwards them over a local socket from any other process.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from pydantic import JsonValue

from storage import content as contentlib
from storage.blobs import BlobStore
from storage.catalog import Catalog, to_us, utcnow
from storage.cursor import CursorCodec, Position, query_digest
from storage.errors import Conflict, InvalidInput, NotFound, TooLarge
from storage.models import (
    Artifact,
    ArtifactFields,
    ArtifactPage,
    ArtifactPatch,
    ChangeEvent,
    ContentBody,
    DeleteResult,
    ListQuery,
    NewArtifact,
    Scope,
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


def new_artifact_id() -> str:
    return f"art_{uuid.uuid4().hex}"


def artifact_uri(artifact_id: str) -> str:
    return f"artifact://{artifact_id}"


class ArtifactStore:
    def __init__(self, catalog: Catalog, blobs: BlobStore, *, max_content_bytes: int) -> None:
        self.catalog = catalog
        self.blobs = blobs
        self.max_content_bytes = max_content_bytes
        self._lock = threading.RLock()
        with self._lock:
            self.cursors = CursorCodec(catalog.secret("cursor_secret"))

    def close(self) -> None:
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
            # Content processing (mime sniffing, text extraction) needs no lock; the timestamp is taken under
            # it so that created_at follows insertion order, which keeps list's time windows tight.
            body = self._body(new.content, blob, new.data, new.file_name, new.mime_type)
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
                    "status": new.status, "expires_at": self._expiry(now, new.ttl_seconds),
                    "is_pinned": bool(new.is_pinned), "is_indexed": False, "indexed_at": None,
                    "index_collection": None, "index_error": None, "index_attempts": 0, "embedding_model_id": None,
                    "chunk_count": 0, "promoted_to_source_id": None, "created_by": new.created_by,
                    "created_at": now, "updated_at": now,
                }
                # No existence check up front: the primary key catches a retried id, and only then is the
                # existing row read (a single INSERT is its own transaction).
                if not self.catalog.insert_new(row):
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

    def _write_version(self, row: dict[str, Any], replaced: dict[str, Any] | None) -> None:
        with self.catalog.transaction():
            if replaced is not None:
                self.catalog.update(
                    replaced["artifact_id"],
                    {"is_latest": False, "replaced_by_version": row["version"], "updated_at": row["created_at"]},
                )
            self.catalog.insert(row)

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
        with self._staged(patch.data) as blob, self._lock:
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

            if not patch.changes_content():
                if not changes:
                    raise InvalidInput("nothing to update: pass content, file bytes or at least one field to change")
                changes["updated_at"] = now
                self.catalog.update(latest["artifact_id"], changes)
                fresh = self.catalog.get(latest["artifact_id"], now)
                assert fresh is not None
                return (
                    UpdateResult(artifact=self._to_model(fresh, max_chars=0), new_version=False),
                    self._event("updated", scope, latest["root_artifact_id"], [latest["artifact_id"]]),
                )

            new_id = new_artifact_id()
            file_name = patch.file_name if patch.file_name is not None else latest["file_name"]
            body = self._body(patch.content, blob, patch.data, file_name, patch.mime_type)
            row_new = {k: latest[k] for k in _INHERITED}
            row_new.update(changes)
            row_new.update(body)
            ttl = row_new["ttl_seconds"]
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
            self.catalog.delete(sorted(doomed_ids))
            # Re-link the survivors: each points at the next, the last becomes latest.
            for i, v in enumerate(remaining):
                nxt = remaining[i + 1]["version"] if i + 1 < len(remaining) else None
                if v["replaced_by_version"] != nxt or v["is_latest"] != (nxt is None):
                    self.catalog.update(v["artifact_id"], {"replaced_by_version": nxt, "is_latest": nxt is None,
                                                           "updated_at": now})
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
