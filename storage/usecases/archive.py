"""Export a scope to a portable archive, and restore an archive into a store (storage/archive.py: the format).

Export is consistent while other processes write: it fixes the set of versions first (their ids, one read), and
a version never changes its content, so the archive is that cut. A version deleted before its turn (or whose
blob the collector removed meanwhile) is left out and counted as `vanished`; one created after the cut is not
in it. Fields a version may change in place (tags, metadata...) are as they were when the version was copied.

Restore checks the whole archive first (names, header, manifest, every blob's sha256), so a bad archive
changes nothing; then it inserts each version with its ids (a version already present is skipped, so a restore
may be repeated or resumed) and queues the latest version of each artifact for indexing.
"""

from __future__ import annotations

import os
from typing import BinaryIO

import anyio
from pydantic import BaseModel, Field

from artifact_mcp.storage.access import Access
from artifact_mcp.storage.archive import ArchivedVersion, ArchiveHeader, VersionIdentity
from artifact_mcp.storage.archive_files import ArchiveReader, ArchiveWriter
from artifact_mcp.storage.blobs import blob_key
from artifact_mcp.storage.clock import utcnow
from artifact_mcp.storage.errors import Conflict, InvalidInput, StoreError
from artifact_mcp.storage.models import Scope
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.usecases.steps import Step, StepReport, tell

_BATCH = 200
# Versions in flight at once: one is staged here while the owner commits another. Any order is safe: each
# insert re-links its artifact's versions under the store lock.
IN_FLIGHT = 4


class ExportReport(BaseModel):
    dest: str
    versions: int = Field(description="Versions written to the archive.")
    blobs: int
    bytes: int = Field(description="Bytes of the blobs written.")
    vanished: int = Field(description="Versions of the cut deleted before they were copied (left out).")


class RestoreReport(BaseModel):
    source: str
    versions: int
    restored: int
    present: int = Field(description="Versions the store already held (skipped).")
    blobs: int
    bytes: int


def _copy_blob(store: StoreClient, writer: ArchiveWriter, sha256: str) -> int | None:
    try:
        with store.blobs.reader(blob_key(sha256)) as src:
            return writer.add_blob(sha256, src)
    except FileNotFoundError:
        return None


async def export_archive(store: StoreClient, access: Access, dest: str,
                         report: StepReport | None = None) -> ExportReport:
    ids = await store.archive_ids(access.scope)
    writer = ArchiveWriter(dest)
    written: set[str] = set()
    done = size = vanished = 0
    try:
        for start in range(0, len(ids), _BATCH):
            batch = ids[start:start + _BATCH]
            versions = await store.archive_versions(access.scope, batch)
            vanished += len(batch) - len(versions)
            for v in versions:
                if v.sha256 is not None and v.sha256 not in written:
                    copied = await anyio.to_thread.run_sync(_copy_blob, store, writer, v.sha256)
                    if copied is None:  # deleted and collected since the cut
                        vanished += 1
                        continue
                    written.add(v.sha256)
                    size += copied
                writer.add_version(v)
                done += 1
                await tell(report, Step("exporting", done + vanished, len(ids), size, 0, v.artifact_id, "written"))
        header = ArchiveHeader(created_at=utcnow(), scope=access.scope.label(), versions=done, blobs=len(written),
                               manifest_sha256="0" * 64)
        await anyio.to_thread.run_sync(writer.finish, header)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(writer.abort)
        raise
    return ExportReport(dest=dest, versions=done, blobs=len(written), bytes=size, vanished=vanished)


def _verify(reader: ArchiveReader) -> tuple[list[ArchivedVersion], dict[str, int]]:
    """Every check a restore makes before it writes anything: (versions, size of each blob by sha256)."""
    header = reader.header()
    versions = reader.versions(header)
    sizes: dict[str, int] = {}
    for v in versions:
        if v.sha256 is None or v.sha256 in sizes:
            continue
        digest, size = reader.blob_digest(v.sha256)
        if digest != v.sha256:
            raise InvalidInput(f"{reader.source}: blobs/{v.sha256} hashes to {digest}: the archive was altered or "
                               "damaged; nothing was restored")
        sizes[v.sha256] = size
    return versions, sizes


async def restore_archive(store: StoreClient, access: Access, source: str,
                          report: StepReport | None = None) -> RestoreReport:
    if not os.path.exists(source):
        raise InvalidInput(f"no such archive: {source}; give the directory or .tar/.tar.gz file `export` wrote")
    reader = await anyio.to_thread.run_sync(ArchiveReader, source)
    try:
        await tell(report, Step("verifying", 0, 1, 0, 0, source))
        versions, sizes = await anyio.to_thread.run_sync(_verify, reader)
        for scope in {(v.org_id, v.workspace_id, v.namespace_id) for v in versions}:
            access.principal.check(Scope(org_id=scope[0], workspace_id=scope[1], namespace_id=scope[2]), "write")
        present: set[str] = set()
        ids = [v.artifact_id for v in versions]
        by_id = {v.artifact_id: v for v in versions}
        for start in range(0, len(ids), _BATCH):
            for held in await store.present_versions(ids[start:start + _BATCH]):
                if held != VersionIdentity.of(by_id[held.artifact_id]):
                    raise Conflict(f"version id {held.artifact_id} is already taken by another artifact version "
                                   f"({held.root_artifact_id} v{held.version}) than the archive's; nothing was "
                                   "restored (restore into another store)")
                present.add(held.artifact_id)
        total_bytes = sum(sizes.values())
        done = done_bytes = restored = 0
        # Members of one tar share its file position: read them one at a time.
        limit = anyio.Semaphore(1 if reader.is_tar else IN_FLIGHT)

        async def one(v: ArchivedVersion) -> None:
            nonlocal done, done_bytes, restored
            try:
                outcome = "present" if v.artifact_id in present else await _restore_one(store, reader, v)
            finally:
                limit.release()
            restored += outcome == "restored"
            done += 1
            done_bytes += sizes.get(v.sha256, 0) if v.sha256 is not None else 0
            await tell(report, Step("restoring", done, len(versions), done_bytes, total_bytes, v.artifact_id,
                                    outcome))

        try:
            async with anyio.create_task_group() as tg:
                for v in versions:
                    await limit.acquire()
                    tg.start_soon(one, v)
        except BaseExceptionGroup as group:
            # A refused version (a Conflict) stops the restore: raise it as itself, for the door to show.
            refused = next((e for e in group.exceptions if isinstance(e, StoreError)), None)
            if refused is None:
                raise
            raise refused from None
    finally:
        reader.close()
    return RestoreReport(source=source, versions=len(versions), restored=restored, present=len(versions) - restored,
                         blobs=len(sizes), bytes=total_bytes)


async def _restore_one(store: StoreClient, reader: ArchiveReader, v: ArchivedVersion) -> str:
    if v.sha256 is None:
        return (await store.restore_from_stream(v, None)).outcome
    with reader.blob(v.sha256) as fh:
        src: BinaryIO = fh
        return (await store.restore_from_stream(v, src)).outcome
