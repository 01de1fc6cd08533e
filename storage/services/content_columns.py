"""A version's content columns, from text/JSON content, from file bytes, or from bytes streamed to the blob store.
Content processing (mime sniffing, text extraction) needs no lock."""

from __future__ import annotations

from pydantic import JsonValue

from artifact_mcp.storage import content as contentlib
from artifact_mcp.storage.blobs import BlobStore
from artifact_mcp.storage.errors import InvalidInput, TooLarge
from artifact_mcp.storage.models import StagedBlob
from artifact_mcp.storage.repositories.rows import ContentColumns


def content_columns(new_content: JsonValue, blob: tuple[str, str] | None, data: bytes | None,
                    file_name: str | None, mime_type: str | None, *, max_content_bytes: int,
                    previous: tuple[str | None, str] | None = None) -> ContentColumns:
    """Columns describing a version's content; `blob` is the staged (key, sha256) of `data`. `previous` is the
    (content_kind, mime_type) of the version this one replaces: new text or JSON content of the same kind with no
    `mime_type` keeps the earlier one (a Markdown report edited stays text/markdown, not text/plain)."""
    if data is not None and new_content is not None:
        raise InvalidInput("give either `content` or file bytes, not both")
    if data is None or blob is None:
        if new_content is None:
            raise InvalidInput("content is required: a string, or a JSON object/array")
        kind, text, default_mime = contentlib.content_to_text(new_content)
        try:
            size = len(text.encode())
        except UnicodeEncodeError:
            raise InvalidInput(
                "content contains an unpaired surrogate (e.g. \\ud800), which is not valid Unicode text; "
                "remove it, or send the bytes as a file with upload_artifact"
            ) from None
        if size > max_content_bytes:
            raise TooLarge(
                f"content is {size} bytes, over the {max_content_bytes}-byte limit "
                "(ARTIFACT_MCP_MAX_UPLOAD_BYTES); split it into several artifacts"
            )
        if mime_type is None and previous is not None and previous[0] == kind:
            mime_type = previous[1]
        return ContentColumns(
            content_kind=kind, content_text=text, content_preview=contentlib.preview(text),
            mime_type=(mime_type or default_mime).lower(), size_bytes=size, sha256=None, has_file=False,
            blob_key=None, file_name=file_name,
        )
    mime = contentlib.detect_mime(data, file_name, mime_type)
    text = contentlib.text_for(data, mime)
    key, digest = blob
    return ContentColumns(
        content_kind=None, content_text=text, content_preview=contentlib.preview(text), mime_type=mime,
        size_bytes=len(data), sha256=digest, has_file=True, blob_key=key, file_name=file_name,
    )


def streamed_columns(blobs: BlobStore, key: str, staged: StagedBlob, file_name: str | None,
                     mime_type: str | None) -> ContentColumns:
    """Columns describing a version whose bytes were streamed: only the head is read (mime sniffing, and text
    up to MAX_STREAM_TEXT_BYTES for text-like types)."""
    head = blobs.read_head(key, contentlib.SNIFF_BYTES)
    mime = contentlib.detect_mime(head, file_name, mime_type)
    text = None
    if contentlib.is_text_mime(mime):
        if staged.size_bytes > len(head):
            head = blobs.read_head(key, contentlib.MAX_STREAM_TEXT_BYTES)
        text = contentlib.text_of_prefix(head, mime, complete=len(head) >= staged.size_bytes)
    return ContentColumns(
        content_kind=None, content_text=text, content_preview=contentlib.preview(text), mime_type=mime,
        size_bytes=staged.size_bytes, sha256=staged.sha256, has_file=True, blob_key=key, file_name=file_name,
    )
