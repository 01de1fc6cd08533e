"""Text of an artifact's bytes (text types only, UTF-8), of its JSON content, and its preview."""

from __future__ import annotations

import codecs
import json

from pydantic import JsonValue

from artifact_mcp.storage.content.mime import decode_text, is_text_mime
from artifact_mcp.storage.models import PREVIEW_CHARS

# Text of a streamed (large) file is extracted from at most its first bytes: enough to read and search a large log
# or CSV by its beginning, without holding a gigabyte in memory. Smaller files sent inline are read whole.
MAX_STREAM_TEXT_BYTES = 16 * 1024 * 1024


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
