"""BM25 terms: how texts and queries become the term hashes the postings store.

The postings themselves (`(term hash, chunk seq, tf)`) are the posting repository's
(`repositories/duckdb/postings.py`); scoring happens on the in-memory search cache (`search_cache.py`), with
collection statistics over what the caller may see.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from functools import lru_cache

from artifact_mcp.storage.index.tokenize import tokens


@lru_cache(maxsize=500_000)
def term_hash(term: str) -> int:
    """Signed 64-bit id of a term (BIGINT): compact postings, integer comparisons."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little", signed=True)


def hashed_counts(text: str) -> tuple[list[int], list[int], int]:
    """(term hashes, their frequencies, length in terms) of a text, as postings store them."""
    toks = tokens(text)
    counts = Counter(toks)
    return [term_hash(t) for t in counts], list(counts.values()), len(toks)


def query_terms(query: str) -> list[int]:
    """The hashes of a query's distinct terms (a repeated query term counts once: measured, repeats do not
    help)."""
    return [term_hash(t) for t in dict.fromkeys(tokens(query))]
