"""Writes: create (version 1), update (in place, or a new version), delete, and the versions' bookkeeping.

Bytes are staged to the blob store before the lock; the row, its index job and whatever else changes commit in
one transaction; the search cache hears of removed chunks after that.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from artifact_mcp.storage.clock import utcnow
from artifact_mcp.storage.errors import Conflict, InvalidInput
from artifact_mcp.storage.ids import new_artifact_id
from artifact_mcp.storage.models import (
    Artifact,
    ArtifactFields,
    ArtifactPatch,
    ChangeEvent,
    DeleteResult,
    FilePatch,
    NewArtifact,
    NewFileArtifact,
    Scope,
    StagedBlob,
    UpdateResult,
)
from artifact_mcp.storage.repositories.protocols import DuplicateKey
from artifact_mcp.storage.repositories.rows import (
    INHERITED,
    ArtifactRow,
    ContentColumns,
    expiry,
    new_artifact_row,
)
from artifact_mcp.storage.services.content_columns import content_columns, streamed_columns
from artifact_mcp.storage.services.context import StoreContext, to_model
from artifact_mcp.storage.services.indexing import IndexingService

# Artifact fields copied onto its chunks (search filters read them there); expires_at is derived.
_CHUNK_FIELDS = ("thread_id", "artifact_type", "tags")


def _descriptive(fields: ArtifactFields, *, only_set: bool) -> dict[str, Any]:
    """The descriptive columns; for a patch (`only_set`) just the ones it changes (None = keep)."""
    return fields.model_dump(include=set(ArtifactFields.model_fields), exclude_none=only_set)


class WriteService:
    def __init__(self, ctx: StoreContext, indexing: IndexingService) -> None:
        self.ctx = ctx
        self.db = ctx.db
        self.indexing = indexing

    # --- create ----------------------------------------------------------------------------------

    def create(self, scope: Scope, new: NewArtifact, artifact_id: str | None = None) -> tuple[Artifact, ChangeEvent]:
        artifact_id = artifact_id or new_artifact_id()
        with self.ctx.staged(new.data) as blob:
            # Content processing (mime sniffing, text extraction) needs no lock.
            body = content_columns(new.content, blob, new.data, new.file_name, new.mime_type,
                                   max_content_bytes=self.ctx.max_content_bytes)
            return self._insert_first(scope, new, body, artifact_id)

    def create_from_blob(self, scope: Scope, new: NewFileArtifact, staged: StagedBlob,
                         artifact_id: str | None = None) -> tuple[Artifact, ChangeEvent]:
        artifact_id = artifact_id or new_artifact_id()
        with self.ctx.adopted(staged) as key:
            body = streamed_columns(self.ctx.blobs, key, staged, new.file_name, new.mime_type)
            return self._insert_first(scope, new, body, artifact_id)

    def _insert_first(self, scope: Scope, new: NewFileArtifact, body: ContentColumns,
                      artifact_id: str) -> tuple[Artifact, ChangeEvent]:
        # The timestamp is taken under the lock so that created_at follows insertion order, which keeps list's time
        # windows tight.
        desc = _descriptive(new, only_set=False)
        with self.ctx.lock:
            now = utcnow()
            row = new_artifact_row(artifact_id, scope, name=new.name, artifact_type=new.artifact_type, content=body,
                                   now=now, **desc, status=new.status, created_by=new.created_by)
            # No existence check up front: the primary key catches a retried id, and only then is the
            # existing row read. The row and its index job commit together.
            if not self._insert_with_job(row, now):
                existing = self.db.artifacts.get(artifact_id, now)
                assert existing is not None
                if not existing.in_scope(scope) or existing.name != new.name:
                    raise Conflict(f"artifact id {artifact_id!r} is already taken")
                return to_model(existing), self.ctx.event("created", scope, existing.root_artifact_id, [artifact_id])
            return to_model(row, max_chars=0), self.ctx.event("created", scope, artifact_id, [artifact_id])

    def _insert_with_job(self, row: ArtifactRow, now: datetime) -> bool:
        try:
            with self.db.transaction():
                self.db.artifacts.insert(row)
                self.db.jobs.enqueue(row, now)
        except DuplicateKey:
            return False
        return True

    def _write_version(self, row: ArtifactRow, replaced: ArtifactRow) -> None:
        with self.db.transaction():
            # The new row first: of two requests making the same version number, the second waits here on the
            # unique key and is refused (Conflict) before it holds anything another writer could wait for.
            self.db.artifacts.insert(row)
            self.db.artifacts.update(
                replaced.artifact_id,
                {"is_latest": False, "replaced_by_version": row.version, "updated_at": row.created_at},
            )
            # Only the latest version is searchable: the replaced one leaves the index in this transaction.
            self.indexing.unindex([replaced.artifact_id])
            self.db.jobs.enqueue(row, row.created_at)

    # --- update ----------------------------------------------------------------------------------

    def update(self, scope: Scope, artifact_id: str, patch: ArtifactPatch) -> tuple[UpdateResult, ChangeEvent]:
        with self.ctx.staged(patch.data) as blob:
            content_body = None
            if patch.changes_content():
                def content_body(file_name: str | None, latest: ArtifactRow) -> ContentColumns:
                    return content_columns(patch.content, blob, patch.data, file_name, patch.mime_type,
                                           max_content_bytes=self.ctx.max_content_bytes,
                                           previous=(latest.content_kind, latest.mime_type))
            return self._apply_update(scope, artifact_id, patch, content_body)

    def update_from_blob(self, scope: Scope, artifact_id: str, patch: FilePatch,
                         staged: StagedBlob) -> tuple[UpdateResult, ChangeEvent]:
        with self.ctx.adopted(staged) as key:
            return self._apply_update(
                scope, artifact_id, patch,
                lambda file_name, _latest: streamed_columns(self.ctx.blobs, key, staged, file_name, patch.mime_type))

    @staticmethod
    def _changes(patch: FilePatch, now: datetime) -> dict[str, Any]:
        changes = _descriptive(patch, only_set=True)
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
            changes["expires_at"] = expiry(now, patch.ttl_seconds)
        return changes

    def _apply_update(self, scope: Scope, artifact_id: str, patch: FilePatch,
                      content_body: Callable[[str | None, ArtifactRow], ContentColumns] | None,
                      ) -> tuple[UpdateResult, ChangeEvent]:
        """Apply `patch`: in place, or as a new version whose content columns `content_body(file_name, latest)`
        gives."""
        with self.ctx.lock:
            now = utcnow()  # under the lock, as in create: a new version's created_at follows insertion order
            row = self.ctx.visible_row(scope, artifact_id, now)
            latest = self.db.artifacts.latest(row.root_artifact_id, now)
            assert latest is not None
            if patch.expected_version is not None and patch.expected_version != latest.version:
                raise Conflict(
                    f"expected_version {patch.expected_version} is stale: the latest version is "
                    f"{latest.version} (id {latest.artifact_id}); re-read it and apply your change again"
                )
            changes = self._changes(patch, now)
            if content_body is None:
                return self._update_in_place(scope, latest, changes, now)
            if latest.document_type and latest.status == "processing":
                # A new version would cancel the queued generation job and leave this one 'processing' for good.
                raise Conflict(
                    f"artifact {latest.artifact_id} is a document still being generated; wait until its status "
                    "is 'completed' or 'failed' (get_artifact), then give it new content"
                )
            new_id = new_artifact_id()
            file_name = patch.file_name if patch.file_name is not None else latest.file_name
            body = content_body(file_name, latest)
            fields = {k: getattr(latest, k) for k in INHERITED}
            fields.update(changes)
            name, artifact_type = fields.pop("name", latest.name), fields.pop("artifact_type", latest.artifact_type)
            fields.pop("expires_at", None)  # follows from ttl_seconds, counted from now
            if fields["status"] != "archived":
                fields["status"] = patch.status or "pending"
            fields["created_by"] = patch.updated_by or latest.created_by
            row_new = new_artifact_row(new_id, latest.tenant, name=name, artifact_type=artifact_type, content=body,
                                       now=now, version=latest.version + 1,
                                       root_artifact_id=latest.root_artifact_id, **fields)
            self._write_version(row_new, replaced=latest)
            return (
                UpdateResult(artifact=to_model(row_new, max_chars=0), new_version=True),
                self.ctx.event("updated", scope, latest.root_artifact_id, [latest.artifact_id, new_id]),
            )

    def _update_in_place(self, scope: Scope, latest: ArtifactRow, changes: dict[str, Any],
                         now: datetime) -> tuple[UpdateResult, ChangeEvent]:
        db = self.db
        if not changes:
            raise InvalidInput("nothing to update: pass content, file bytes or at least one field to change")
        changes["updated_at"] = now
        with db.transaction():
            db.artifacts.update(latest.artifact_id, changes)
            fresh = db.artifacts.get(latest.artifact_id, now)
            assert fresh is not None
            synced = {k: getattr(fresh, k) for k in _CHUNK_FIELDS if k in changes}
            if {"expires_at", "is_pinned", "ttl_seconds"} & changes.keys():
                synced["expires_at"] = fresh.chunk_expiry()
            db.chunks.set_fields([fresh.artifact_id], synced)
            if {"name", "description", "summary", "keywords"} & changes.keys() and (
                changes.get("name", latest.name) != latest.name or not fresh.chunk_count
                or not fresh.content_text
            ):
                # The name heads every chunk's indexed text (and a file without text is indexed by its
                # descriptive fields): refresh them. The old chunks stay searchable meanwhile.
                db.jobs.enqueue(fresh, now, "reindex")
        return (
            UpdateResult(artifact=to_model(fresh, max_chars=0), new_version=False),
            self.ctx.event("updated", scope, latest.root_artifact_id, [latest.artifact_id]),
        )

    # --- delete ----------------------------------------------------------------------------------

    def delete(self, scope: Scope, artifact_id: str, all_versions: bool = True) -> tuple[DeleteResult, ChangeEvent]:
        now = utcnow()
        with self.ctx.lock:
            row = self.ctx.visible_row(scope, artifact_id, now)
            root = row.root_artifact_id
            versions = self.db.artifacts.versions(root, now)
            doomed = [v for v in versions if all_versions or v.artifact_id == artifact_id]
            result = self.delete_rows(root, versions, doomed, now)
        return result, self.ctx.event("deleted", scope, root, result.deleted_artifact_ids)

    def delete_rows(self, root: str, versions: list[ArtifactRow], doomed: list[ArtifactRow],
                    now: datetime) -> DeleteResult:
        """Delete `doomed` among an artifact's `versions` and re-link the survivors (caller holds the lock)."""
        db = self.db
        doomed_set = {v.artifact_id for v in doomed}
        doomed_ids = sorted(doomed_set)
        remaining = [v for v in versions if v.artifact_id not in doomed_set]
        keys = [v.blob_key for v in doomed if v.blob_key]
        with db.transaction():
            db.artifacts.lock([v.artifact_id for v in versions])
            self.indexing.unindex(doomed_ids)
            db.jobs.delete_for(doomed_ids)
            db.generations.delete_for(doomed_ids)
            db.artifacts.delete(doomed_ids)
            if not remaining:
                db.sources.delete_for_root(root)
            # Re-link the survivors: each points at the next, the last becomes latest.
            for i, v in enumerate(remaining):
                nxt = remaining[i + 1].version if i + 1 < len(remaining) else None
                if v.replaced_by_version != nxt or v.is_latest != (nxt is None):
                    fields: dict[str, Any] = {"replaced_by_version": nxt, "is_latest": nxt is None, "updated_at": now}
                    if nxt is None:
                        # An older version is latest again: it left the index when it was replaced, so index it.
                        fields.update({"is_indexed": False, "chunk_count": 0, "index_collection": None})
                        if v.status in ("ready", "failed"):
                            fields["status"] = "pending"
                        db.jobs.enqueue(v, now, "reindex")
                    db.artifacts.update(v.artifact_id, fields)
        removed = self.ctx.drop_unreferenced(keys)
        return DeleteResult(
            deleted_artifact_ids=doomed_ids, root_artifact_id=root, remaining_versions=len(remaining),
            blobs_removed=removed,
        )
