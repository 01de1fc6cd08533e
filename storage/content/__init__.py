"""Content handling: mime type detection (`mime`), text decoding and previews (`text`), PDF text extraction
(`pdf`). Callers use the package: `from artifact_mcp.storage import content as contentlib`."""

from __future__ import annotations

from artifact_mcp.storage.content.mime import (
    SNIFF_BYTES,
    decode_text,
    detect_mime,
    guess_from_name,
    is_text_mime,
    sniff,
)
from artifact_mcp.storage.content.pdf import MAX_PDF_EXTRACT_BYTES, extract_pdf_text
from artifact_mcp.storage.content.text import (
    MAX_STREAM_TEXT_BYTES,
    content_to_text,
    preview,
    text_for,
    text_of_prefix,
    text_to_content,
)

__all__ = [
    "MAX_PDF_EXTRACT_BYTES",
    "MAX_STREAM_TEXT_BYTES",
    "SNIFF_BYTES",
    "content_to_text",
    "decode_text",
    "detect_mime",
    "extract_pdf_text",
    "guess_from_name",
    "is_text_mime",
    "preview",
    "sniff",
    "text_for",
    "text_of_prefix",
    "text_to_content",
]
