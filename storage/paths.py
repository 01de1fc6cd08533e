"""Reading server-local files for upload, confined to configured allowed roots.

The path is resolved (symlinks included) and must stay under a root; `..` components are refused
outright. The file is then opened with O_NOFOLLOW and the opened descriptor is checked again, so
swapping a path component for a symlink between the check and the open gains nothing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from artifact_mcp.storage.errors import Forbidden, InvalidInput, NotFound, TooLarge


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def open_allowed_file(raw_path: str, roots: Sequence[str], max_bytes: int) -> tuple[BinaryIO, str]:
    """Open `raw_path` for reading (binary) if it lies under one of `roots`; returns (file, file name). The caller
    closes the file and, when it reads it in pieces, enforces `max_bytes` as it reads (the file may grow)."""
    if not roots:
        raise Forbidden(
            "uploading from a server path is disabled: no allowed roots are configured "
            "(set ARTIFACT_MCP_ALLOWED_ROOTS); send the bytes as base64 `data` instead"
        )
    if not raw_path or "\x00" in raw_path:
        raise InvalidInput("path must be a non-empty file path")
    if ".." in Path(raw_path).parts:
        raise Forbidden(f"path {raw_path!r} contains '..'; give a path inside an allowed root without '..'")
    if not os.path.isabs(raw_path):
        raise InvalidInput(f"path {raw_path!r} is relative; give an absolute path under an allowed root")
    real_roots = [os.path.realpath(r) for r in roots]
    resolved = os.path.realpath(raw_path)
    if not any(_inside(resolved, r) for r in real_roots):
        raise Forbidden(
            f"path {raw_path!r} resolves outside the allowed roots ({', '.join(roots)}); "
            "symlinks are followed before this check"
        )
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise NotFound(f"no file at {raw_path!r}") from None
    except OSError as exc:
        raise Forbidden(f"cannot open {raw_path!r}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidInput(f"{raw_path!r} is not a regular file")
        opened = os.path.realpath(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else resolved
        if not any(_inside(opened, r) for r in real_roots):
            raise Forbidden(f"path {raw_path!r} changed to point outside the allowed roots while being opened")
        if st.st_size > max_bytes:
            raise TooLarge(
                f"file is {st.st_size} bytes, over the {max_bytes}-byte limit (ARTIFACT_MCP_MAX_UPLOAD_BYTES)"
            )
        return os.fdopen(fd, "rb"), os.path.basename(resolved)
    except BaseException:
        os.close(fd)
        raise

