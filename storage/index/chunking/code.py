"""Source code: LlamaIndex's CodeSplitter over a tree-sitter grammar wheel per language; blocks and lines
when no grammar is installed or the parse fails."""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import Any

from artifact_mcp.storage.index.chunking.packing import CODE_LEVELS, capped_tokens, locate_all, pack
from artifact_mcp.storage.index.chunking.spans import ChunkingConfig, Span
from artifact_mcp.storage.index.cl100k import llama_tokenizer

log = logging.getLogger(__name__)

# language -> (module of the grammar wheel, function returning its language pointer)
_GRAMMARS = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "bash": ("tree_sitter_bash", "language"),
    "sql": ("tree_sitter_sql", "language"),
}

# A tree-sitter Parser is not meant for concurrent use, and splitters are shared.
_code_lock = threading.Lock()


@lru_cache(maxsize=32)
def code_splitter(language: str, config: ChunkingConfig) -> Any | None:
    """CodeSplitter over a grammar wheel, or None when no grammar for `language` is installed.

    Not tree_sitter_language_pack: it downloads grammars at run time.
    """
    if language not in _GRAMMARS:
        return None
    module_name, function = _GRAMMARS[language]
    try:
        import importlib

        from tree_sitter import Language, Parser

        parser = Parser(Language(getattr(importlib.import_module(module_name), function)()))
    except Exception:  # missing wheel, or a grammar ABI this tree-sitter cannot load
        log.info("no tree-sitter grammar for %s; splitting it by blocks and lines", language, exc_info=True)
        return None

    from llama_index.core.node_parser import CodeSplitter

    class _Splitter(CodeSplitter):
        def _chunk_node(self, node: Any, text_bytes: bytes, last_end: int = 0) -> list[str]:
            # CodeSplitter's walk, but summing each child's token count instead of re-tokenizing
            # the growing chunk for every child: that made a 3 MB file take 20 s instead of 4.
            chunks: list[str] = []
            current, current_size = "", 0
            for child in node.children:
                piece = text_bytes[last_end : child.end_byte].decode("utf-8")
                size = capped_tokens(piece, self.max_tokens)
                if size > self.max_tokens:
                    if current:
                        chunks.append(current)
                    current, current_size = "", 0
                    if child.children:
                        chunks.extend(self._chunk_node(child, text_bytes, last_end))
                    else:
                        chunks.extend(self._split_oversized_leaf(piece, self.max_tokens))
                elif current_size + size > self.max_tokens:
                    if current:
                        chunks.append(current)
                    current, current_size = piece, size
                else:
                    current, current_size = current + piece, current_size + size
                last_end = child.end_byte
            if current:
                chunks.append(current)
            return chunks

        def _split_oversized_leaf(self, text: str, max_size: int) -> list[str]:
            # The stock version re-tokenizes a growing string once per character, and cuts anywhere.
            return [text[s:e] for s, e in pack(text, 0, len(text), max_size, CODE_LEVELS)]

    return _Splitter(
        language=language, parser=parser, count_mode="token", max_tokens=config.chunk_size, tokenizer=llama_tokenizer()
    )


def split_code(text: str, language: str, config: ChunkingConfig) -> list[Span]:
    splitter = code_splitter(language, config)
    if splitter is not None:
        try:
            with _code_lock:
                chunks = splitter.split_text(text)
            return [Span(*loc) for loc in locate_all(text, [c for c in chunks if c], 0, len(text)) if loc]
        except (ValueError, RecursionError):  # unparseable, or a syntax tree deeper than Python's stack
            log.debug("tree-sitter could not parse %s; splitting by blocks and lines", language, exc_info=True)
    return [Span(s, e) for s, e in pack(text, 0, len(text), config.chunk_size, CODE_LEVELS)]
