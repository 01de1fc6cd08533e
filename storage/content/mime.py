"""Mime type detection: the declared type, else magic bytes, else the file name, else text vs binary."""

from __future__ import annotations

import mimetypes

# Types mimetypes does not know everywhere, or knows wrongly for our purposes.
_EXTRA_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".jsonl": "application/x-ndjson",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".toml": "application/toml",
    ".py": "text/x-python",
    ".rs": "text/x-rust",
    ".go": "text/x-go",
    ".ts": "text/x-typescript",
    ".tsx": "text/x-typescript",
    ".sql": "application/sql",
    ".csv": "text/csv",
    ".log": "text/plain",
}

_MAGIC: list[tuple[bytes, str]] = [
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"RIFF", "application/octet-stream"),
]

_TEXT_APPLICATION_TYPES = {
    "application/json",
    "application/x-ndjson",
    "application/xml",
    "application/yaml",
    "application/toml",
    "application/javascript",
    "application/sql",
    "application/x-sh",
}


def is_text_mime(mime: str) -> bool:
    base = mime.split(";", 1)[0].strip().lower()
    return base.startswith("text/") or base in _TEXT_APPLICATION_TYPES or base.endswith(("+json", "+xml"))


def guess_from_name(file_name: str | None) -> str | None:
    if not file_name:
        return None
    lower = file_name.lower()
    for ext, mime in _EXTRA_TYPES.items():
        if lower.endswith(ext):
            return mime
    return mimetypes.guess_type(lower, strict=False)[0]


def sniff(data: bytes) -> str | None:
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    return None


def decode_text(data: bytes) -> str | None:
    """UTF-8 text of `data`, or None when it is not text."""
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def detect_mime(data: bytes, file_name: str | None, declared: str | None) -> str:
    """Declared type wins; then magic bytes; then the file name; then text vs binary."""
    if declared:
        return declared.strip().lower()
    sniffed = sniff(data)
    if sniffed:
        return sniffed
    by_name = guess_from_name(file_name)
    if by_name:
        return by_name
    return "text/plain" if decode_text(data) is not None else "application/octet-stream"


SNIFF_BYTES = 8192  # how much of a file detect_mime() is given
