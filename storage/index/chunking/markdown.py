"""Markdown: sections by heading (LlamaIndex's MarkdownNodeParser), each chunk led by its enclosing headings."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from artifact_mcp.storage.index.chunking.packing import locate_all
from artifact_mcp.storage.index.chunking.prose import prose_ranges
from artifact_mcp.storage.index.chunking.spans import ChunkingConfig, Span

_HEADING = re.compile(r"^(#+)\s(.*)")


@cache
def _markdown_parser() -> Any:
    from llama_index.core.node_parser import MarkdownNodeParser
    from llama_index.core.schema import TextNode

    class _Parser(MarkdownNodeParser):
        # The stock node builder hashes the whole document once per section: quadratic in the input.
        def _build_node_from_split(self, text_split: str, node: Any, header_path: str) -> TextNode:
            return TextNode(text=text_split)

    return _Parser(include_metadata=False, include_prev_next_rel=False)


def split_markdown(text: str, config: ChunkingConfig) -> list[Span]:
    from llama_index.core.schema import Document

    sections = _markdown_parser().get_nodes_from_node(Document(text=text))
    spans: list[Span] = []
    headings: list[tuple[int, str]] = []  # the open heading of each level, as the parser tracks them
    texts = [node.text for node in sections]
    for section, loc in zip(texts, locate_all(text, texts, 0, len(text)), strict=True):
        if loc is None:
            continue
        start, end = loc
        first_line = section.partition("\n")[0]
        own = ""
        if m := _HEADING.match(first_line):
            level = len(m.group(1))
            while headings and headings[-1][0] >= level:
                headings.pop()
            own = first_line.strip()
            outer = "".join(h + "\n" for _, h in headings)
            headings.append((level, own))
        else:
            outer = "".join(h + "\n" for _, h in headings)
        # A section's first chunk starts with its own heading; later chunks repeat it as context.
        outer_ctx = outer + "\n" if outer else ""
        inner_ctx = outer + own + "\n\n" if own else outer_ctx
        for i, (s, e) in enumerate(prose_ranges(text, start, end, config, inner_ctx)):
            spans.append(Span(s, e, outer_ctx if i == 0 and s == start else inner_ctx))
    return spans
