"""BM25 over postings kept in DuckDB: incremental, transactional, filtered in SQL.

A write appends its chunks' postings `(term hash, chunk seq, tf)` in the transaction that stores the chunks;
a delete removes them in the transaction that removes the chunks. Nothing is ever rebuilt. Collection
statistics (N, average length, document frequencies) are computed at query time *over the chunks the
caller may see*, so scores neither depend on nor reveal other tenants' data.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from functools import lru_cache
from typing import Any

import duckdb

from storage.index.tokenize import tokens


@lru_cache(maxsize=500_000)
def term_hash(term: str) -> int:
    """Signed 64-bit id of a term (BIGINT): compact postings, integer comparisons."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "little", signed=True)


def postings_for(seq: int, counts: Counter[str]) -> tuple[list[int], list[int], list[int]]:
    terms = [term_hash(t) for t in counts]
    return terms, [seq] * len(terms), list(counts.values())


class LexicalIndex:
    def __init__(self, con: duckdb.DuckDBPyConnection, *, k1: float = 0.9, b: float = 0.4) -> None:
        self._con = con
        self.k1 = k1
        self.b = b

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
    def query_terms(query: str) -> tuple[list[int], list[int]]:
        """(term hashes, query term frequencies) of a query."""
        qcounts = Counter(tokens(query))
        return [term_hash(t) for t in qcounts], list(qcounts.values())

    def search(self, query: str, where: str, params: list[Any], top_k: int) -> list[tuple[int, float]]:
        """(seq, BM25 score) of the best `top_k` chunks passing `where` (a clause over `chunks`)."""
        qterms, qtfs = self.query_terms(query)
        if not qterms:
            return []
        # Lucene's BM25 idf (always positive); a query term repeated counts once per repeat.
        rows = self._con.execute(
            f"""
            WITH q AS (SELECT unnest(?::BIGINT[]) AS term, unnest(?::INTEGER[]) AS qtf),
            e AS (SELECT seq, n_terms FROM chunks WHERE {where}),
            st AS (SELECT count(*) AS n, avg(n_terms) AS avgdl FROM e),
            p AS (
                SELECT p.term, p.seq, p.tf, e.n_terms FROM postings p JOIN e ON p.seq = e.seq
                WHERE list_contains(?, p.term)
            ),
            df AS (SELECT term, count(*) AS df FROM p GROUP BY term)
            SELECT p.seq,
                   sum(q.qtf * ln(1 + (st.n - df.df + 0.5) / (df.df + 0.5))
                       * p.tf * (? + 1) / (p.tf + ? * (1 - ? + ? * p.n_terms / st.avgdl))) AS score
            FROM p JOIN df ON p.term = df.term JOIN q ON p.term = q.term, st
            GROUP BY p.seq ORDER BY score DESC, p.seq LIMIT ?
            """,
            [qterms, qtfs, *params, qterms, self.k1, self.k1, self.b, self.b, int(top_k)],
        ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]
