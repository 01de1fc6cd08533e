"""Prose: LlamaIndex's SentenceSplitter, guarded against the inputs that make it crawl or cut inside words."""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any

from artifact_mcp.storage.index.chunking.packing import (
    TEXT_LEVELS,
    cuts_word,
    fits,
    locate_all,
    pack,
    trim,
)
from artifact_mcp.storage.index.chunking.spans import ChunkingConfig
from artifact_mcp.storage.index.cl100k import count_tokens, llama_tokenizer

log = logging.getLogger(__name__)

# Where SentenceSplitter cuts a sentence too long for a chunk: its own default (after , . ; and the
# CJK full stop, question and exclamation marks) plus line breaks, so that hard-wrapped text with no
# spaces (base64, hex dumps) is cut per line rather than per character, a tokenizer call each.
BREAKERS = ",.;\u3002\uff1f\uff01"
_SUB_SENTENCE = f"[^{BREAKERS}\n]+[{BREAKERS}\n]?|[{BREAKERS}\n]"


@lru_cache(maxsize=8)
def sentence_splitter(config: ChunkingConfig) -> Any:
    from llama_index.core.node_parser import SentenceSplitter

    return SentenceSplitter(
        chunk_size=config.chunk_size, chunk_overlap=config.chunk_overlap, secondary_chunking_regex=_SUB_SENTENCE,
        tokenizer=llama_tokenizer(),
    )


def _defeats_sentence_splitter(text: str, length: int) -> bool:
    """Whether SentenceSplitter would have to cut `text` one character (or one word) at a time.

    True for `length` characters in a row with no space or sentence mark (it cuts those per
    character: a tokenizer call each), and for text averaging `length` characters between sentence
    marks and newlines (it cuts those per word: 10 s for 5 MB).
    """
    marks = text.count("\n") + sum(text.count(c) for c in BREAKERS)
    if marks * length < len(text):
        return True
    if max(map(len, text.split()), default=0) < length:  # the usual answer, found 2x faster than a regex
        return False
    return re.search(f"[^\\s{BREAKERS}]{{{length}}}", text) is not None


def prose_ranges(text: str, lo: int, hi: int, config: ChunkingConfig, context: str = "") -> list[tuple[int, int]]:
    """SentenceSplitter over text[lo:hi] (room left for `context` in each chunk), located back in `text`."""
    region = text[lo:hi]
    if fits(region, config.chunk_size - (count_tokens(context) if context else 0)):
        found = trim(text, lo, hi)
        return [found] if found else []
    splitter = sentence_splitter(config)
    if not _defeats_sentence_splitter(region, 8 * config.chunk_size):
        try:
            if context and config.chunk_size - count_tokens(context) >= max(50, config.chunk_overlap + 1):
                chunks = splitter.split_text_metadata_aware(region, context)
            else:
                chunks = splitter.split_text(region)
            ranges = [loc for loc in locate_all(text, chunks, lo, hi) if loc]
            # Its last resort splits a run without spaces (words joined by tabs, say) per character, which can
            # cut a word in two; then pack by whitespace instead.
            if not any(cuts_word(text, a) or cuts_word(text, b) for a, b in ranges):
                return ranges
            log.debug("SentenceSplitter cut inside a word; packing by whitespace")
        except ValueError:  # "Single token exceeded chunk size": a tiny chunk_size
            log.debug("SentenceSplitter gave up; packing by whitespace", exc_info=True)
    return pack(text, lo, hi, config.chunk_size, TEXT_LEVELS)
