"""Split an artifact's text into chunks for indexing, choosing a LlamaIndex node parser by mime type.

`split()` is a pure function of its arguments. Every `ChunkSpan` carries offsets into the text it was
given, so a hit can be shown in place:

* For every type but HTML, ``span.text.endswith(text[span.start:span.end])``: the chunk's own span of
  the source, exactly, possibly preceded by context (markdown: the enclosing headings; JSON: the JSON
  path of the members, like ``$.results[3:6]:``).
* For HTML, ``span.text`` is extracted text (tags dropped, entities decoded, whitespace collapsed);
  ``text[span.start:span.end]`` runs from the source of its first character to the source of its last.

Spans come in strictly increasing ``start`` order, are non-empty and together cover every
non-whitespace character of the source (of the extracted text, for HTML). LlamaIndex is imported on
first use only: it takes about a second to import.

Modules, one parser each: `markdown`, `code` (tree-sitter per language), `json` (JSON and NDJSON by
structure), `html` (text with source offsets), `prose` (SentenceSplitter); `packing` is the shared
machinery and the fallback when a parser fails; `kinds` picks the parser. PDF text comes from
`artifact_mcp.storage.content` (extraction is content handling); `split()` gets that text.
"""

from __future__ import annotations

from artifact_mcp.storage.index.chunking.code import split_code
from artifact_mcp.storage.index.chunking.html import split_html
from artifact_mcp.storage.index.chunking.json import split_json
from artifact_mcp.storage.index.chunking.kinds import kind_of
from artifact_mcp.storage.index.chunking.markdown import split_markdown
from artifact_mcp.storage.index.chunking.packing import finish
from artifact_mcp.storage.index.chunking.prose import prose_ranges
from artifact_mcp.storage.index.chunking.spans import DEFAULT_CONFIG, ChunkingConfig, ChunkSpan, Span

__all__ = ["DEFAULT_CONFIG", "ChunkSpan", "ChunkingConfig", "split"]


def split(
    text: str, mime_type: str, file_name: str | None = None, config: ChunkingConfig = DEFAULT_CONFIG
) -> list[ChunkSpan]:
    """Chunks of `text`, parsed as `mime_type` (the file name's extension decides when the mime does not)."""
    if not text.strip():
        return []
    kind = kind_of(mime_type, file_name)
    if kind == "html":
        return split_html(text, config)
    spans: list[Span] | None = None
    if kind == "markdown":
        spans = split_markdown(text, config)
    elif kind in ("json", "ndjson"):
        spans = split_json(text, config, ndjson=kind == "ndjson")
    elif kind.startswith("code"):
        spans = split_code(text, kind.partition(":")[2], config)
    if spans is None:  # plain text, or a structured parse that failed
        spans = [Span(s, e) for s, e in prose_ranges(text, 0, len(text), config)]
    return [
        ChunkSpan(sp.prefix + text[sp.start : sp.end], sp.start, sp.end)
        for sp in finish(text, spans, config.chunk_size)
    ]
