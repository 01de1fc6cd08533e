"""Reading and writing the portable archive (storage/archive.py describes its layout): a directory, or a tar
(`.tar`, or gzip-compressed `.tar.gz` / `.tgz`).

A writer builds the archive beside its destination (`DEST.part`) and renames it into place once archive.json is
written, so an interrupted export never leaves something that looks like an archive. A reader accepts only the
names the format has (`archive.json`, `manifest.jsonl`, `blobs/<sha256>`) and regular files, so a crafted
archive cannot make a restore read or write anywhere else.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from artifact_mcp.storage.archive import ARCHIVE_VERSION, ArchivedVersion, ArchiveHeader
from artifact_mcp.storage.errors import InvalidInput

HEADER_NAME = "archive.json"
MANIFEST_NAME = "manifest.jsonl"
_BLOB_NAME = re.compile(r"^blobs/([0-9a-f]{64})$")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_COPY_CHUNK = 1024 * 1024
_SPOOL_BYTES = 8 * 1024 * 1024
_GZIP_LEVEL = 6


def is_tar(path: str) -> bool:
    return path.endswith(_TAR_SUFFIXES)


class ArchiveWriter:
    """Blobs as they come, the manifest (spooled to a temporary file) and the header at the end."""

    def __init__(self, dest: str) -> None:
        if os.path.lexists(dest):
            raise InvalidInput(f"{dest} exists; export into a new path (a directory, or a .tar/.tar.gz/.tgz file)")
        parent = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(parent):
            raise InvalidInput(f"{parent} is not a directory; create it first")
        self.dest = dest
        self.part = dest + ".part"
        self._tar: tarfile.TarFile | None = None
        if os.path.lexists(self.part):  # a stopped export's leftovers
            shutil.rmtree(self.part) if os.path.isdir(self.part) else os.unlink(self.part)
        if is_tar(dest):
            if dest.endswith(("gz", ".tgz")):
                # gzip's own default level, not tarfile's 9: on bench/transfer.py's archive (62 MB) 9 took 5.4 s
                # and 6 took 1.16 s, for a file 2% larger.
                self._tar = tarfile.open(self.part, "w:gz", compresslevel=_GZIP_LEVEL)  # noqa: SIM115 - see abort
            else:
                self._tar = tarfile.open(self.part, "w")  # noqa: SIM115 - closed by finish/abort
        else:
            os.makedirs(os.path.join(self.part, "blobs"))
        self._manifest = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish/abort
        self._digest = hashlib.sha256()
        self.lines = 0

    def add_blob(self, sha256: str, source: BinaryIO) -> int:
        """Copy one blob (read to its end) under blobs/<sha256>; its size. Spooled first for a tar, whose member
        header needs the size and which cannot take back a half-written member if the source fails."""
        name = f"blobs/{sha256}"
        if self._tar is None:
            final = os.path.join(self.part, name)
            tmp = final + ".tmp"
            try:
                with open(tmp, "wb") as out:
                    shutil.copyfileobj(source, out, _COPY_CHUNK)
                os.replace(tmp, final)
            finally:
                with suppress(FileNotFoundError):
                    os.unlink(tmp)
            return os.path.getsize(final)
        with tempfile.SpooledTemporaryFile(_SPOOL_BYTES) as spool:
            shutil.copyfileobj(source, spool, _COPY_CHUNK)
            info = tarfile.TarInfo(name)
            info.size = spool.tell()
            info.mode = 0o644
            spool.seek(0)
            self._tar.addfile(info, spool)
            return info.size

    def add_version(self, version: ArchivedVersion) -> None:
        line = version.model_dump_json().encode() + b"\n"
        self._manifest.write(line)
        self._digest.update(line)
        self.lines += 1

    def finish(self, header: ArchiveHeader) -> None:
        header = header.model_copy(update={"manifest_sha256": self._digest.hexdigest(), "versions": self.lines})
        head = header.model_dump_json(indent=2).encode() + b"\n"
        self._manifest.seek(0)
        if self._tar is None:
            with open(os.path.join(self.part, MANIFEST_NAME), "wb") as out:
                shutil.copyfileobj(self._manifest, out, _COPY_CHUNK)
            with open(os.path.join(self.part, HEADER_NAME), "wb") as out:
                out.write(head)
        else:
            info = tarfile.TarInfo(MANIFEST_NAME)
            info.size, info.mode = self._manifest.seek(0, io.SEEK_END), 0o644
            self._manifest.seek(0)
            self._tar.addfile(info, self._manifest)
            info = tarfile.TarInfo(HEADER_NAME)
            info.size, info.mode = len(head), 0o644
            self._tar.addfile(info, io.BytesIO(head))
            self._tar.close()
        self._manifest.close()
        os.replace(self.part, self.dest)

    def abort(self) -> None:
        self._manifest.close()
        if self._tar is not None:
            with suppress(Exception):
                self._tar.close()
        with suppress(FileNotFoundError):
            shutil.rmtree(self.part) if os.path.isdir(self.part) else os.unlink(self.part)


def _bad(source: str, why: str) -> InvalidInput:
    return InvalidInput(f"{source} is not a usable artifact-mcp archive: {why}; nothing was restored")


class ArchiveReader:
    """An archive opened for restore: its header, its versions (checked against the header), its blobs."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._tar: tarfile.TarFile | None = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if os.path.isdir(source):
            self._root: Path | None = Path(source)
        elif os.path.isfile(source):
            self._root = None
            self._open_tar()
        else:
            raise InvalidInput(f"no such archive: {source}; give the directory or .tar/.tar.gz file `export` wrote")

    def _open_tar(self) -> None:
        try:
            self._tar = tarfile.open(self.source, "r:*")  # noqa: SIM115 - closed by close()
            members = self._tar.getmembers()
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            raise _bad(self.source, f"it is not a readable tar file or is truncated ({exc})") from None
        for m in members:
            name = m.name[2:] if m.name.startswith("./") else m.name
            if name in ("", ".", "blobs") and m.isdir():
                continue
            if not (name in (HEADER_NAME, MANIFEST_NAME) or _BLOB_NAME.match(name)):
                raise _bad(self.source, f"it holds {m.name!r}, which is not a name the format has (only "
                                        f"{HEADER_NAME}, {MANIFEST_NAME}, blobs/<sha256>)")
            if not m.isfile():
                raise _bad(self.source, f"{m.name!r} is a link or device, not a regular file")
            self._members[name] = m

    @property
    def is_tar(self) -> bool:
        return self._tar is not None

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    @contextmanager
    def _open(self, name: str) -> Iterator[BinaryIO]:
        if self._root is not None:
            path = self._root / name
            if not path.is_file():
                raise _bad(self.source, f"{name} is missing")
            with path.open("rb") as fh:
                yield fh
            return
        member = self._members.get(name)
        fh = self._tar.extractfile(member) if member is not None and self._tar is not None else None
        if fh is None:
            raise _bad(self.source, f"{name} is missing")
        with fh:
            yield fh  # type: ignore[misc]

    def header(self) -> ArchiveHeader:
        with self._open(HEADER_NAME) as fh:
            raw = fh.read(1024 * 1024)
        try:
            header = ArchiveHeader.model_validate_json(raw)
        except ValidationError as exc:
            raise _bad(self.source, f"{HEADER_NAME} is not an archive header ({exc.errors()[0]['msg']})") from None
        if header.format_version > ARCHIVE_VERSION:
            raise _bad(self.source, f"it is format version {header.format_version}, newer than this artifact-mcp "
                                    f"reads ({ARCHIVE_VERSION}); restore it with a newer release")
        return header

    def versions(self, header: ArchiveHeader) -> list[ArchivedVersion]:
        out: list[ArchivedVersion] = []
        digest = hashlib.sha256()
        try:
            with self._open(MANIFEST_NAME) as fh:
                for n, line in enumerate(fh, 1):
                    digest.update(line)
                    try:
                        out.append(ArchivedVersion.model_validate_json(line))
                    except ValidationError as exc:
                        err = exc.errors()[0]
                        where = ".".join(str(p) for p in err["loc"]) or "line"
                        raise _bad(self.source, f"{MANIFEST_NAME} line {n}: {where}: {err['msg']}") from None
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise _bad(self.source, f"{MANIFEST_NAME} cannot be read ({exc})") from None
        if len(out) != header.versions or digest.hexdigest() != header.manifest_sha256:
            raise _bad(self.source, f"{MANIFEST_NAME} does not match {HEADER_NAME} ({len(out)} lines, "
                                    f"{header.versions} expected; truncated or edited)")
        return out

    @contextmanager
    def blob(self, sha256: str) -> Iterator[BinaryIO]:
        with self._open(f"blobs/{sha256}") as fh:
            yield fh

    def blob_digest(self, sha256: str) -> tuple[str, int]:
        """(sha256, size) of the blob as the archive holds it."""
        h, size = hashlib.sha256(), 0
        try:
            with self.blob(sha256) as fh:
                while chunk := fh.read(_COPY_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise _bad(self.source, f"blobs/{sha256} cannot be read ({exc})") from None
        return h.hexdigest(), size
