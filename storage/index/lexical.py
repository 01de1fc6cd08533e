"""BM25 over postings kept in DuckDB: incremental, transactional, filtered in SQL.

A write appends its chunks' postings `(term hash, chunk seq, tf)` in the transaction that stores the chunks;
a delete removes them in the transaction that removes the chunks. Nothing is ever rebuilt. Scoring happens
on the in-memory mirror (`memory.py`), with collection statistics over what the caller may see.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from functools import lru_cache

import duckdb

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


class LexicalIndex:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def add(self, terms: list[int], seqs: list[int], tfs: list[int]) -> None:
        if terms:
            self._con.execute(
                "INSERT INTO postings SELECT unnest(?::BIGINT[]), unnest(?::BIGINT[]), unnest(?::INTEGER[])",
                [terms, seqs, tfs],
            )

    def delete_artifacts(self, artifact_ids: list[str]) -> None:
        """Remove the postings of these artifacts' chunks (call before deleting the chunks)."""
        self._con.execute(
            "DELETE FROM postings WHERE seq IN (SELECT seq FROM chunks WHERE list_contains(?, artifact_id))",
            [artifact_ids],
        )

    @staticmethod
    def query_terms(query: str) -> list[int]:
        """The hashes of a query's distinct terms (a repeated query term counts once: measured, repeats do not
        help)."""
        return [term_hash(t) for t in dict.fromkeys(tokens(query))]
