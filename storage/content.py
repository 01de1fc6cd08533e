"""Mime type detection, text extraction and previews."""

from __future__ import annotations

import codecs
import json
import mimetypes

from pydantic import JsonValue

from artifact_mcp.storage.models import PREVIEW_CHARS

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


# Text of a streamed (large) file is extracted from at most its first bytes: enough to read and search a large log
# or CSV by its beginning, without holding a gigabyte in memory. Smaller files sent inline are read whole.
MAX_STREAM_TEXT_BYTES = 16 * 1024 * 1024
# Larger PDFs are not parsed (the parser holds the whole file): they are indexed by their descriptive fields.
MAX_PDF_EXTRACT_BYTES = 64 * 1024 * 1024
SNIFF_BYTES = 8192


def text_of_prefix(head: bytes, mime: str, complete: bool) -> str | None:
    """`text_for` of a file's first bytes; when they are not the whole file (`complete` false), a UTF-8 sequence
    cut at the end is dropped instead of making the text undecodable."""
    if complete or not is_text_mime(mime) or b"\x00" in head[:8192]:
        return text_for(head, mime)
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None


def text_for(data: bytes, mime: str) -> str | None:
    """Extracted text for text-like types; None for binary ones."""
    if not is_text_mime(mime):
        return None
    return decode_text(data)


def content_to_text(content: JsonValue) -> tuple[str, str, str]:
    """(kind, text, default mime) for JSON content: strings are stored as text, the rest as JSON."""
    if isinstance(content, str):
        return "text", content, "text/plain"
    return "json", json.dumps(content, ensure_ascii=False, indent=2), "application/json"


def text_to_content(kind: str, text: str | None) -> JsonValue:
    if text is None:
        return None
    return json.loads(text) if kind == "json" else text


def preview(text: str | None) -> str | None:
    if text is None:
        return None
    return text[:PREVIEW_CHARS]
