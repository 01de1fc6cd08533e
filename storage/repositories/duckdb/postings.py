"""BM25 postings on DuckDB: `(term hash, chunk seq, tf)`, incremental and transactional.

A write appends its chunks' postings in the transaction that stores the chunks; a delete removes them in the
transaction that removes the chunks. Nothing is ever rebuilt. Scoring happens on the in-memory search cache
(`index/search_cache.py`); term hashing is `index/lexical.py`'s.
"""

from __future__ import annotations

import duckdb
import numpy as np


class DuckDBPostings:
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

    def clear(self) -> None:
        self._con.execute("DELETE FROM postings")

    def all(self) -> dict[str, np.ndarray]:
        return self._con.execute("SELECT term, seq, tf FROM postings ORDER BY term, seq").fetchnumpy()
