"""Import files and folders from this machine: one artifact per file, a new version when the file changed,
nothing when it did not.

A file is known by its absolute path (recorded in the artifact's metadata under `IMPORT_KEY`) within the scope
and thread: a name is not unique, a path is, and the path survives renaming the artifact. Its sha256 against
the latest version's tells unchanged from changed. Each file commits on its own, so an import stopped halfway
(Ctrl-C) is resumed by running it again: what was done is found unchanged.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from pathlib import Path
from typing import Literal

import anyio
from pydantic import BaseModel, Field, ValidationError

from artifact_mcp.storage import content as contentlib
from artifact_mcp.storage.access import Access
from artifact_mcp.storage.archive import IMPORT_KEY, ImportedFile
from artifact_mcp.storage.errors import InvalidInput, StoreError
from artifact_mcp.storage.models import ArtifactType, FilePatch, ScopeId, Tag
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.usecases.artifacts import upload_stream
from artifact_mcp.storage.usecases.bodies import UploadFields
from artifact_mcp.storage.usecases.steps import Step, StepReport, tell

_LOOKUP_BATCH = 500
# Files in flight at once: one is hashed and staged here while the owner commits another (it writes one at a time).
IN_FLIGHT = 4
_HASH_CHUNK = 1024 * 1024
# artifact_type by mime type when the caller names none (prefix match, first wins).
_TYPES = (
    ("text/markdown", "document"), ("application/pdf", "document"), ("text/html", "document"),
    ("application/json", "json"), ("application/x-ndjson", "json"), ("image/", "image"), ("text/csv", "data"),
    ("application/yaml", "config"), ("application/toml", "config"), ("text/x-", "code"),
    ("application/javascript", "code"), ("application/sql", "code"), ("application/x-sh", "code"),
    ("text/plain", "document"),
)


class ImportOptions(BaseModel):
    thread_id: ScopeId | None = None
    artifact_type: ArtifactType | None = Field(None, description="Type of every file (default: from its kind).")
    tags: list[Tag] | None = None
    recursive: bool = False
    globs: list[str] = Field(default_factory=list, description="Only files whose name or relative path matches "
                                                               "one of these patterns (fnmatch).")


class ImportItem(BaseModel):
    path: str
    outcome: Literal["created", "updated", "unchanged", "failed"]
    artifact_id: str | None = None
    version: int | None = None
    size_bytes: int = 0
    error: str | None = None


class ImportReport(BaseModel):
    files: int
    created: int
    updated: int
    unchanged: int
    failed: int
    bytes: int = Field(description="Bytes of the files read.")
    items: list[ImportItem]


def type_of(path: Path, head: bytes) -> str:
    """An artifact type from the file's content and extension (the mime detection every upload uses)."""
    mime = contentlib.detect_mime(head, path.name, None)
    return next((kind for prefix, kind in _TYPES if mime.startswith(prefix)), "file")


def _matches(rel: str, globs: list[str]) -> bool:
    return not globs or any(fnmatch.fnmatch(rel, g) or fnmatch.fnmatch(os.path.basename(rel), g) for g in globs)


def collect(paths: list[str], opts: ImportOptions) -> list[Path]:
    """The files to import, absolute and sorted; a missing path fails the whole import before anything is written."""
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise InvalidInput(f"no such file or directory: {', '.join(missing)}; nothing was imported")
    if not paths:
        raise InvalidInput("give at least one file or directory to import")
    found: dict[str, Path] = {}
    for given in paths:
        root = Path(given).resolve()
        if root.is_file():
            found[str(root)] = root
            continue
        children = root.rglob("*") if opts.recursive else root.iterdir()
        for child in children:
            rel = child.relative_to(root).as_posix()
            if any(part.startswith(".") for part in child.relative_to(root).parts):
                continue  # hidden files and folders (.git, .venv...) are not material
            if child.is_file() and _matches(rel, opts.globs):
                found[str(child)] = child
    return [found[k] for k in sorted(found)]


def _digest(path: Path) -> tuple[str, int, bytes]:
    """(sha256, size, first bytes) of a file, read once in pieces."""
    h, size, head = hashlib.sha256(), 0, b""
    with path.open("rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            if not head:
                head = chunk[: contentlib.SNIFF_BYTES]
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size, head


async def import_paths(store: StoreClient, access: Access, paths: list[str], opts: ImportOptions,
                       report: StepReport | None = None) -> ImportReport:
    files = await anyio.to_thread.run_sync(collect, paths, opts)
    sizes = [f.stat().st_size for f in files]
    total_bytes = sum(sizes)
    known: dict[str, ImportedFile] = {}
    keys = [str(f) for f in files]
    for i in range(0, len(keys), _LOOKUP_BATCH):
        for hit in await store.imported(access.scope, opts.thread_id, keys[i:i + _LOOKUP_BATCH]):
            known[hit.path] = hit
    items: list[ImportItem] = []
    done_bytes = 0
    limit = anyio.Semaphore(IN_FLIGHT)

    async def one(path: Path, size: int) -> None:
        nonlocal done_bytes
        try:
            item = await _import_one(store, access, path, opts, known.get(str(path)))
        finally:
            limit.release()
        items.append(item)
        done_bytes += size
        await tell(report, Step("importing", len(items), len(files), done_bytes, total_bytes, str(path), item.outcome))

    async with anyio.create_task_group() as tg:
        for path, size in zip(files, sizes, strict=True):
            await limit.acquire()  # a task per file in flight, not per file: a huge folder is not a huge task list
            tg.start_soon(one, path, size)
    items.sort(key=lambda i: i.path)
    count = {k: sum(1 for i in items if i.outcome == k) for k in ("created", "updated", "unchanged", "failed")}
    return ImportReport(files=len(files), **count, bytes=sum(i.size_bytes for i in items), items=items)


async def _import_one(store: StoreClient, access: Access, path: Path, opts: ImportOptions,
                      known: ImportedFile | None) -> ImportItem:
    key = str(path)
    try:
        digest, size, head = await anyio.to_thread.run_sync(_digest, path)
        if known is not None and known.sha256 == digest:
            return ImportItem(path=key, outcome="unchanged", artifact_id=known.artifact_id, version=known.version,
                              size_bytes=size)
        with path.open("rb") as fh:
            if known is None:
                fields = UploadFields(name=path.name, file_name=path.name, thread_id=opts.thread_id,
                                      artifact_type=opts.artifact_type or type_of(path, head), tags=opts.tags,
                                      metadata={IMPORT_KEY: key}, source="import")
                art = await upload_stream(store, access, fields, fh, path.name)
                return ImportItem(path=key, outcome="created", artifact_id=art.artifact_id, version=art.version,
                                  size_bytes=size)
            # expected_version: a file changed twice by two imports at once makes one version, not a fork.
            patch = FilePatch(expected_version=known.version, updated_by=access.author(None))
            result = await store.update_from_stream(access.scope, known.artifact_id, patch, fh)
            return ImportItem(path=key, outcome="updated", artifact_id=result.artifact.artifact_id,
                              version=result.artifact.version, size_bytes=size)
    except (OSError, StoreError, ValidationError) as exc:
        if isinstance(exc, StoreError):
            message = exc.message
        elif isinstance(exc, ValidationError):  # e.g. a file name no artifact may carry
            err = exc.errors()[0]
            message = f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        else:
            message = f"{type(exc).__name__}: {exc}"
        return ImportItem(path=key, outcome="failed", error=message)
