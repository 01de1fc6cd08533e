"""Transfers: what import, export and restore need from the catalog beyond the ordinary writes.

Restore inserts a version with its original ids and fields (one transaction per version) and re-links the
versions of its artifact around it, so an archive may be restored in any order, into any store, again and again.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import fields as dataclass_fields

from artifact_mcp.storage.archive import IMPORT_KEY, ArchivedVersion, ImportedFile, RestoreOutcome, VersionIdentity
from artifact_mcp.storage.clock import utcnow
from artifact_mcp.storage.errors import Conflict, InvalidInput
from artifact_mcp.storage.models import ChangeEvent, Scope, StagedBlob
from artifact_mcp.storage.repositories.rows import ArtifactRow
from artifact_mcp.storage.services.context import StoreContext
from artifact_mcp.storage.services.indexing import IndexingService

_ARCHIVED = tuple(ArchivedVersion.model_fields)
_ROW_FIELDS = tuple(f.name for f in dataclass_fields(ArtifactRow))
# A restored version starts with no index state; its own index job rebuilds it.
_FRESH_INDEX = {"is_indexed": False, "indexed_at": None, "index_collection": None, "index_error": None,
                "index_attempts": 0, "embedding_model_id": None, "chunk_count": 0, "promoted_to_source_id": None,
                "is_expired": False}


class TransferService:
    def __init__(self, ctx: StoreContext, indexing: IndexingService) -> None:
        self.ctx = ctx
        self.db = ctx.db
        self.indexing = indexing

    # --- import ------------------------------------------------------------------------------------

    def imported(self, scope: Scope, thread_id: str | None, paths: list[str]) -> list[ImportedFile]:
        with self.ctx.lock:
            rows = self.db.artifacts.latest_by_metadata(scope, IMPORT_KEY, paths, thread_id)
        return [ImportedFile(path=p, artifact_id=r.artifact_id, version=r.version, sha256=r.sha256)
                for p, r in rows.items()]

    # --- export ------------------------------------------------------------------------------------

    def archive_ids(self, scope: Scope) -> list[str]:
        with self.ctx.lock:
            return self.db.artifacts.archive_ids(scope)

    def archive_versions(self, scope: Scope, artifact_ids: list[str]) -> list[ArchivedVersion]:
        """These versions as archive records, in the order asked; ids gone meanwhile (deleted, swept) are left out."""
        with self.ctx.lock:
            rows = self.db.artifacts.get_many(artifact_ids, utcnow(), with_content=True)
        out = []
        for artifact_id in artifact_ids:
            row = rows.get(artifact_id)
            if row is not None and row.in_scope(scope):
                out.append(ArchivedVersion.model_validate({k: getattr(row, k) for k in _ARCHIVED}))
        return out

    # --- restore -----------------------------------------------------------------------------------

    def present(self, artifact_ids: list[str]) -> list[VersionIdentity]:
        """The identity of those of these versions the catalog holds (a restore stages no bytes for them)."""
        with self.ctx.lock:
            rows = self.db.artifacts.get_many(artifact_ids, utcnow())
        return [VersionIdentity.model_validate({k: getattr(r, k) for k in VersionIdentity.model_fields})
                for r in rows.values()]

    def restore_version(self, version: ArchivedVersion,
                        staged: StagedBlob | None) -> tuple[RestoreOutcome, ChangeEvent]:
        if version.has_file != (staged is not None):
            raise InvalidInput(f"version {version.artifact_id}: a file version is restored with its staged bytes, "
                               "a text version without")
        if staged is not None and staged.sha256 != version.sha256:
            raise InvalidInput(f"version {version.artifact_id}: its bytes hash to {staged.sha256}, not the "
                               f"{version.sha256} the archive records")
        tenant = Scope(org_id=version.org_id, workspace_id=version.workspace_id, namespace_id=version.namespace_id)
        with self.ctx.adopted(staged) if staged is not None else nullcontext(None) as key, self.ctx.lock:
            outcome = self._insert(version, tenant, key)
        return (RestoreOutcome(artifact_id=version.artifact_id, outcome=outcome),
                self.ctx.event("created", tenant, version.root_artifact_id, [version.artifact_id]))

    def _insert(self, version: ArchivedVersion, tenant: Scope, key: str | None) -> str:
        db, now = self.db, utcnow()
        existing = db.artifacts.get(version.artifact_id, now)
        if existing is not None:
            same = (existing.in_scope(tenant) and existing.root_artifact_id == version.root_artifact_id
                    and existing.version == version.version and existing.sha256 == version.sha256)
            if not same:
                raise Conflict(f"version id {version.artifact_id} is already taken by another artifact version "
                               f"({existing.root_artifact_id} v{existing.version}); restore into another store")
            return "present"
        versions = db.artifacts.versions(version.root_artifact_id, now)
        for v in versions:
            if v.version == version.version or not v.in_scope(tenant):
                raise Conflict(f"artifact {version.root_artifact_id} already has a version {v.version} "
                               f"({v.artifact_id}) that differs from the archive's {version.artifact_id}")
        lower = [v for v in versions if v.version < version.version]
        higher = [v for v in versions if v.version > version.version]
        fields = {**version.model_dump(), **_FRESH_INDEX, "blob_key": key, "is_latest": not higher,
                  "replaced_by_version": higher[0].version if higher else None}
        row = ArtifactRow(**{k: fields[k] for k in _ROW_FIELDS})
        if row.is_latest and row.index_owns_status() and row.status in ("ready", "failed", "processing"):
            row.status = "pending"  # its index job turns it ready again
        with db.transaction():
            if lower:
                below = lower[-1]
                db.artifacts.update(below.artifact_id, {"is_latest": False, "replaced_by_version": version.version})
                if below.is_latest:
                    self.indexing.unindex([below.artifact_id])  # only the latest version is searchable
            db.artifacts.insert(row)
            if row.is_latest:
                db.jobs.enqueue(row, now)
        return "restored"
