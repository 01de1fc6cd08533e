"""BM25 postings on PostgreSQL: `(term hash, chunk seq, tf)`, written in the transaction that writes the chunks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from artifact_mcp.storage.repositories.postgres.connections import Connections


class PostgresPostings:
    def __init__(self, db: Connections) -> None:
        self._db = db

    def add(self, terms: Sequence[int] | np.ndarray, seqs: Sequence[int] | np.ndarray,
            tfs: Sequence[int] | np.ndarray) -> None:
        if len(terms):
            self._db.copy_rows("postings", ("term", "seq", "tf"), zip(
                np.asarray(terms, dtype=np.int64).tolist(), np.asarray(seqs, dtype=np.int64).tolist(),
                np.asarray(tfs, dtype=np.int32).tolist(), strict=True))

    def delete_artifacts(self, artifact_ids: list[str]) -> None:
        """Remove the postings of these artifacts' chunks (call before deleting the chunks)."""
        self._db.run("DELETE FROM postings WHERE seq IN (SELECT seq FROM chunks WHERE artifact_id = ANY(%s))",
                     [list(artifact_ids)])

    def clear(self) -> None:
        self._db.run("DELETE FROM postings")

    def all(self) -> dict[str, np.ndarray]:
        rows = self._db.all("SELECT term, seq, tf FROM postings ORDER BY term, seq")
        if not rows:
            return {"term": np.zeros(0, np.int64), "seq": np.zeros(0, np.int64), "tf": np.zeros(0, np.int32)}
        term, seq, tf = zip(*rows, strict=True)
        return {"term": np.asarray(term, np.int64), "seq": np.asarray(seq, np.int64), "tf": np.asarray(tf, np.int32)}
