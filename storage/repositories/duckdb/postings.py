"""BM25 postings on DuckDB: `(term hash, chunk seq, tf)`, incremental and transactional.

A write appends its chunks' postings in the transaction that stores the chunks; a delete removes them in the
transaction that removes the chunks. Nothing is ever rebuilt. Scoring happens on the in-memory search cache
(`index/search_cache.py`); term hashing is `index/lexical.py`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np

from artifact_mcp.storage.repositories.duckdb.arrays import registered


class DuckDBPostings:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def add(self, terms: Sequence[int] | np.ndarray, seqs: Sequence[int] | np.ndarray,
            tfs: Sequence[int] | np.ndarray) -> None:
        if len(terms):
            # Scanned from numpy arrays in place: list parameters are converted value by value.
            with registered(self._con, {"term": np.asarray(terms, dtype=np.int64),
                                        "seq": np.asarray(seqs, dtype=np.int64),
                                        "tf": np.asarray(tfs, dtype=np.int32)}) as view:
                self._con.execute(f"INSERT INTO postings SELECT term, seq, tf FROM {view}")

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
