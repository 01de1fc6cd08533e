"""Content-addressed blob storage on any fsspec filesystem.

Bytes live under `<root>/sha256/ab/cd/<hex>`. A write goes to `<root>/tmp/<random>` first and is
then moved into place, so a crash never leaves a partial blob under a real key, and identical
bytes are stored once. The garbage collector removes blobs no catalog row references.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import BinaryIO

import fsspec
from fsspec.core import url_to_fs

from artifact_mcp.storage.errors import InvalidInput, TooLarge
from artifact_mcp.storage.models import StagedBlob

log = logging.getLogger(__name__)

_PREFIX = "sha256"
# Streams are copied in pieces of this size: memory stays flat whatever the file's size.
STREAM_CHUNK_BYTES = 1024 * 1024
# An object store's writer buffers this much before sending it as one part of a multipart upload. s3fs's default,
# 50 MiB, held ~157 MB of the server's memory during a streamed upload (its buffer and the part's copies,
# bench/large_file.py --s3); S3's minimum part is 5 MiB, and 10,000 parts of 8 MiB still allow 80 GB.
WRITE_BLOCK_BYTES = 8 * 1024 * 1024
# Temporary files younger than this are never cleaned up: a streamed upload may sit there, written, until the
# owning process moves it into place (see `stage_stream`).
TMP_GRACE_SECONDS = 3600.0
# On a blob store replicas share: how long a written blob is spared by deletes (far longer than any write takes from
# its blob to its committed row).
SHARED_GRACE_SECONDS = 600.0
_TMP_KEY = re.compile(r"^tmp/[0-9a-f]{32}$")


def blob_key(sha256_hex: str) -> str:
    return f"{_PREFIX}/{sha256_hex[:2]}/{sha256_hex[2:4]}/{sha256_hex}"


class BlobStore:
    """Put/get/delete immutable blobs by SHA-256 under an fsspec URL."""

    def __init__(self, url: str, *, max_bytes: int, fsync: bool = True, shared: bool = False) -> None:
        self.url = url
        self.max_bytes = max_bytes
        self.fsync = fsync
        # Shared by replicas (a PostgreSQL catalog): another process's pins are invisible here, so a write always
        # (re)writes its blob, which makes it fresh, and no blob modified in the last SHARED_GRACE_SECONDS is
        # deleted. A replica that reuses stored bytes between another's "unreferenced" check and its delete thus
        # either rewrites them after the delete or makes them too fresh to delete.
        self.shared = shared
        self.fs: fsspec.AbstractFileSystem
        self.fs, self.root = url_to_fs(url)
        self.root = self.root.rstrip("/")
        self._local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        # Keys being written or about to be referenced by an uncommitted catalog row: the
        # collector must not take them even though no row points at them yet.
        self._pinned: dict[str, int] = {}
        self._lock = threading.Lock()
        self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def check_size(self, size: int) -> None:
        if size > self.max_bytes:
            raise TooLarge(
                f"content is {size} bytes, over the {self.max_bytes}-byte limit "
                "(ARTIFACT_MCP_MAX_UPLOAD_BYTES); split it or store a smaller file"
            )

    @contextmanager
    def pinned(self, key: str) -> Iterator[None]:
        """Protect `key` from garbage collection while a catalog write that references it is in flight."""
        with self._lock:
            self._pinned[key] = self._pinned.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                n = self._pinned[key] - 1
                if n:
                    self._pinned[key] = n
                else:
                    del self._pinned[key]

    @contextmanager
    def staged(self, data: bytes) -> Iterator[tuple[str, str]]:
        """Write `data` and keep it safe from the collector until the block ends (i.e. until the
        catalog row that references it has committed). Yields (key, sha256 hex)."""
        self.check_size(len(data))
        digest = hashlib.sha256(data).hexdigest()
        key = blob_key(digest)
        with self.pinned(key):
            self.put(data, digest)
            yield key, digest

    def put(self, data: bytes, digest: str) -> str:
        """Store bytes under their SHA-256 `digest`; returns the key. Prefer `staged`."""
        key = blob_key(digest)
        final = self._path(key)
        if not self.shared and self.fs.exists(final):
            return key
        tmp = self._path(f"tmp/{uuid.uuid4().hex}")
        if self._local:
            # Local disk: write, fsync, rename: the rename is atomic and the bytes are durable first.
            os.makedirs(os.path.dirname(final), exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, final)
        else:
            with self.fs.open(tmp, "wb", block_size=WRITE_BLOCK_BYTES) as fh:
                fh.write(data)
            self.fs.makedirs(self.fs._parent(final), exist_ok=True)
            self.fs.mv(tmp, final)
        return key

    def stage_stream(self, fileobj: BinaryIO, *, chunk_bytes: int = STREAM_CHUNK_BYTES) -> StagedBlob:
        """Copy a binary stream to a temporary key, hashing as it goes, in constant memory.

        The size limit is enforced while copying (an oversize stream is cut short and leaves nothing behind).
        The bytes stay under `tmp/` (spared by `clean_tmp` for TMP_GRACE_SECONDS) until `adopt` moves them to
        their content address: the process that owns the catalog does that with the key pinned, right before the
        row referencing it commits, so no collector, in any process, can take them in between."""
        tmp_key = f"tmp/{uuid.uuid4().hex}"
        tmp = self._path(tmp_key)
        digest = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") if self._local else self.fs.open(tmp, "wb", block_size=WRITE_BLOCK_BYTES) as out:
                while chunk := fileobj.read(chunk_bytes):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise TooLarge(f"the file is over the {self.max_bytes}-byte limit "
                                       "(ARTIFACT_MCP_MAX_UPLOAD_BYTES); nothing was stored")
                    digest.update(chunk)
                    out.write(chunk)
                if self._local and self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
        except BaseException:
            self._remove(tmp)
            raise
        return StagedBlob(tmp_key=tmp_key, sha256=digest.hexdigest(), size_bytes=size)

    def adopt(self, staged: StagedBlob) -> str:
        """Move staged bytes to their content address; returns the key. Call with that key pinned.

        Idempotent: when the temporary file is gone but the blob is in place (a retried call), the blob is used."""
        if not _TMP_KEY.match(staged.tmp_key) or not re.fullmatch(r"[0-9a-f]{64}", staged.sha256):
            raise InvalidInput("not a staged upload: tmp_key must be 'tmp/<32 hex>' and sha256 64 hex digits")
        key = blob_key(staged.sha256)
        final, tmp = self._path(key), self._path(staged.tmp_key)
        if not self.fs.exists(tmp):
            if self.fs.exists(final):
                return key
            raise InvalidInput("the staged upload is gone (cleaned up or never written here); upload the file again")
        size = self.fs.size(tmp)
        if size != staged.size_bytes:
            raise InvalidInput(f"the staged upload holds {size} bytes, not the {staged.size_bytes} announced; "
                               "upload the file again")
        self.check_size(size)
        if self.fs.exists(final) and not self.shared:
            # Identical bytes are already stored (the key is their hash).
            self._remove(tmp)
        elif self._local:
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(tmp, final)
        else:
            self.fs.makedirs(self.fs._parent(final), exist_ok=True)
            self.fs.mv(tmp, final)
        return key

    def discard(self, staged: StagedBlob) -> None:
        """Drop a staged upload that will not be adopted (no-op if it is gone)."""
        if _TMP_KEY.match(staged.tmp_key):
            self._remove(self._path(staged.tmp_key))

    def _remove(self, path: str) -> None:
        with suppress(FileNotFoundError):
            self.fs.rm_file(path)

    def get(self, key: str) -> bytes:
        return self.fs.cat_file(self._path(key))

    def read_head(self, key: str, n: int) -> bytes:
        """The first `n` bytes of a blob (for mime sniffing and bounded text extraction)."""
        with self.fs.open(self._path(key), "rb") as fh:
            return fh.read(n)

    def reader(self, key: str) -> BinaryIO:
        """A seekable binary reader of the blob, through fsspec (callers read it in chunks)."""
        return self.fs.open(self._path(key), "rb")

    def path(self, key: str) -> str:
        """The blob's path on its filesystem (for `fs.sign`)."""
        return self._path(key)

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._path(key))

    def local_path(self, key: str) -> str | None:
        """Filesystem path of the blob when the store is on local disk, else None."""
        return self._path(key) if self._local else None

    def delete_unreferenced(self, keys: Iterable[str], still_referenced: Iterable[str]) -> int:
        """Delete the given keys unless referenced or pinned. Returns how many were removed."""
        keep = set(still_referenced)
        removed = 0
        for key in set(keys) - keep:
            # Check and remove under one lock hold: a concurrent `staged` write of the same bytes pins the key
            # and then skips writing because the file exists; removing it in between would leave its row dangling.
            with self._lock:
                if key in self._pinned or (self.shared and self._fresh(key)):
                    continue
                try:
                    self.fs.rm_file(self._path(key))
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def _fresh(self, key: str) -> bool:
        """Written within SHARED_GRACE_SECONDS (or its age unknown): another replica may be about to reference it."""
        try:
            mtime = _mtime(self.fs.info(self._path(key)))
        except FileNotFoundError:
            return False
        return mtime is None or time.time() - mtime < SHARED_GRACE_SECONDS

    def iter_keys(self) -> Iterator[str]:
        base = f"{self.root}/{_PREFIX}"
        if not self.fs.exists(base):
            return
        for path in self.fs.find(base):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            yield blob_key(name)

    def clean_tmp(self, *, grace_seconds: float = TMP_GRACE_SECONDS) -> int:
        """Remove temporary files left by writes that died (older than the grace period)."""
        removed = 0
        now = time.time()
        tmp_dir = f"{self.root}/tmp"
        for info in self.fs.ls(tmp_dir, detail=True) if self.fs.exists(tmp_dir) else []:
            mtime = _mtime(info)
            if mtime is not None and now - mtime > grace_seconds:
                try:
                    self.fs.rm_file(info["name"])
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed


def _mtime(info: dict) -> float | None:
    for field in ("mtime", "created", "LastModified", "last_modified"):
        value = info.get(field)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return value.timestamp()
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return None
