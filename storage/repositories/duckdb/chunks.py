"""The `chunks` table on DuckDB (the chunk repository), in the catalog's own database.

Chunks and their embeddings (`FLOAT[dim]`) live in the `chunks` table beside the artifact rows, so the
catalog can replace or delete an artifact and its chunks in one transaction. Similarity is DuckDB's
`array_inner_product` over unit vectors (= cosine), and every filter (tenant scope, expiry, thread, type,
tags) is part of the same SQL statement, ahead of its ORDER BY … LIMIT.

The store does not own the connection or its transactions: the backend passes its connection, and the
caller (ArtifactStore, under its lock) decides what is one transaction. A LlamaIndex user reads and writes the same
table through `repositories/vector_store.py` (`ChunkVectorStore` over this class): the store itself never imports
LlamaIndex (chunk_filters.py says why).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import duckdb
import numpy as np

from artifact_mcp.storage.repositories import sqlfilters
from artifact_mcp.storage.repositories.chunk_filters import ChunkFilters
from artifact_mcp.storage.repositories.duckdb.arrays import registered
from artifact_mcp.storage.repositories.rows import CHUNK_COLUMNS, META_COLUMNS, ChunkHit, ChunkText


class DuckDBChunkStore:
    def __init__(self, con: duckdb.DuckDBPyConnection, dim: int) -> None:
        self.dim = dim
        self._con = con
        self._changes = 0

    @property
    def changes(self) -> int:
        """A counter that every write method of this store bumps (before writing, committed or not): a reader that
        cached what `eligible_expiry` returned may keep using it while this is unchanged."""
        return self._changes

    def note_foreign_change(self) -> None:
        self._changing()  # never called: one process owns a DuckDB catalog

    def _changing(self) -> None:
        self._changes += 1

    @property
    def client(self) -> duckdb.DuckDBPyConnection:
        return self._con

    # --- schema --------------------------------------------------------------------------------

    def embedding_dim(self) -> int | None:
        """The dimension of the stored `embedding` column, or None when there is none yet."""
        row = self._con.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'chunks' AND column_name = 'embedding'"
        ).fetchone()
        if row is None:
            return None
        # e.g. 'FLOAT[384]'
        return int(str(row[0]).rsplit("[", 1)[1].rstrip("]"))

    def ensure_column(self) -> bool:
        """Give `chunks` an embedding column of this store's dimension. True when it had to be (re)created, which
        drops every stored chunk: vectors of another size cannot be compared with the new model's."""
        self._changing()
        current = self.embedding_dim()
        if current == self.dim:
            return False
        if current is not None:
            self._con.execute("DELETE FROM postings")
            self._con.execute("DELETE FROM chunks")
            # DuckDB refuses to alter a table that an index depends on.
            self._con.execute("DROP INDEX IF EXISTS chunks_artifact")
            self._con.execute("ALTER TABLE chunks DROP COLUMN embedding")
            self._con.execute("CREATE INDEX chunks_artifact ON chunks (artifact_id)")
        self._con.execute(f"ALTER TABLE chunks ADD COLUMN embedding FLOAT[{int(self.dim)}]")
        return True

    # --- writes --------------------------------------------------------------------------------

    def add_rows(self, columns: Mapping[str, Sequence[Any]], vectors: np.ndarray) -> None:
        """Insert chunks given column by column (`CHUNK_COLUMNS`), with their vectors as one (n, dim) matrix.

        One statement for all the chunks: a list parameter per column, unnested side by side. The vectors do not
        travel as parameters (DuckDB converts a nested list value by value, ~1 ms per 384-float vector, holding
        the GIL): they are scanned from the numpy matrix itself and regrouped into arrays in SQL."""
        self._changing()
        n = len(vectors)
        if n == 0:
            return
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"embeddings have shape {vectors.shape}, the store expects (n, {self.dim})")
        names = [c for c in CHUNK_COLUMNS if c in columns]
        select = ", ".join(f"unnest(?::{_SQL_TYPES.get(c, 'VARCHAR')}[]) AS {c}" for c in names)
        dim = int(self.dim)
        with registered(self._con, {"r": np.repeat(np.arange(n, dtype=np.int64), dim),
                                     "k": np.tile(np.arange(dim, dtype=np.int32), n),
                                     "x": np.ascontiguousarray(vectors, dtype=np.float32).ravel()}) as view:
            self._con.execute(
                f"INSERT INTO chunks ({', '.join(names)}, embedding) "
                f"SELECT {', '.join(f'm.{c}' for c in names)}, v.e "
                f"FROM (SELECT {select}, unnest(range(?)) AS r) m "
                f"JOIN (SELECT r, list(x ORDER BY k)::FLOAT[{dim}] AS e FROM {view} GROUP BY r) v ON m.r = v.r",
                [*(list(columns[c]) for c in names), n],
            )

    def delete_many(self, artifact_ids: list[str]) -> int:
        """Delete these artifacts' chunks; how many went."""
        self._changing()
        return len(self._con.execute(
            "DELETE FROM chunks WHERE list_contains(?, artifact_id) RETURNING seq", [artifact_ids]
        ).fetchall())

    def clear(self) -> None:
        self._changing()
        self._con.execute("DELETE FROM chunks")

    def set_fields(self, artifact_ids: list[str], fields: Mapping[str, Any]) -> None:
        """Keep the copied filter columns in sync with an in-place artifact update."""
        self._changing()
        fields = {k: v for k, v in fields.items() if k in META_COLUMNS}
        if not fields or not artifact_ids:
            return
        assignments = ", ".join(f"{c} = ?" for c in fields)
        self._con.execute(
            f"UPDATE chunks SET {assignments} WHERE list_contains(?, artifact_id)", [*fields.values(), artifact_ids]
        )

    def next_seqs(self, n: int) -> list[int]:
        """`n` fresh chunk seqs (the postings of a chunk reference its seq before the chunk is inserted)."""
        return [r[0] for r in self._con.execute("SELECT nextval('chunk_seq') FROM range(?)", [n]).fetchall()]

    # --- reads ---------------------------------------------------------------------------------

    def has_chunks(self, artifact_id: str) -> bool:
        return self._con.execute("SELECT 1 FROM chunks WHERE artifact_id = ? LIMIT 1", [artifact_id]).fetchone() \
            is not None

    def with_chunks(self, artifact_ids: list[str]) -> set[str]:
        """Which of these artifact versions have chunks."""
        if not artifact_ids:
            return set()
        return {r[0] for r in self._con.execute(
            f"SELECT DISTINCT artifact_id FROM chunks WHERE artifact_id IN ({', '.join('?' for _ in artifact_ids)})",
            artifact_ids,
        ).fetchall()}

    def texts(self, seqs: list[int]) -> dict[int, ChunkText]:
        if not seqs:
            return {}
        # Integers inlined (not bound): DuckDB's cost grows with every bound parameter (~0.6 of 1.9 ms for 10).
        inline = ", ".join(str(int(s)) for s in seqs)
        return {
            r[0]: ChunkText(*r) for r in self._con.execute(
                "SELECT seq, artifact_id, chunk_index, start_char, end_char, text, collection FROM chunks "
                f"WHERE seq IN ({inline})"
            ).fetchall()
        }

    def eligible_seqs(self, filters: ChunkFilters) -> np.ndarray:
        """The seqs of every chunk `filters` admit: eligibility is decided here, in SQL, before any top-k."""
        where, params = sqlfilters.to_sql(filters, dialect=sqlfilters.DUCKDB)
        return self._con.execute(f"SELECT seq FROM chunks WHERE {where}", params).fetchnumpy()["seq"]

    def eligible_expiry(self, filters: ChunkFilters) -> tuple[np.ndarray, np.ndarray]:
        """(seqs, expiry) of every chunk `filters` admit, where expiry is `expires_at` in microseconds since the
        epoch (int64 max: never). For a caller that applies the expiry itself (`expires_at > now` is the only
        condition that changes with time) and keeps the answer while `changes` stays the same."""
        where, params = sqlfilters.to_sql(filters, dialect=sqlfilters.DUCKDB)
        got = self._con.execute(
            f"SELECT seq, coalesce(epoch_us(expires_at), {_NEVER}) AS expiry FROM chunks WHERE {where}", params
        ).fetchnumpy()
        return np.asarray(got["seq"], dtype=np.int64), np.asarray(got["expiry"], dtype=np.int64)

    def count(self) -> int:
        return int(self._con.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def embedding_batches(self) -> Iterator[dict[str, np.ndarray]]:
        # In slices, so the temporary Python objects of a million vectors never exist at once.
        last = -1
        while True:
            batch = self._con.execute(
                "SELECT seq, n_terms, artifact_id, embedding FROM chunks WHERE seq > ? ORDER BY seq LIMIT 20000",
                [last],
            ).fetchnumpy()
            if len(batch["seq"]) == 0:
                return
            yield batch
            last = int(batch["seq"][-1])

    def nearest(self, embedding: Sequence[float], filters: ChunkFilters | None, top_k: int) -> list[ChunkHit]:
        """The `top_k` chunks `filters` admit, most similar first, with their text (the LlamaIndex query)."""
        where, params = sqlfilters.to_sql(filters, dialect=sqlfilters.DUCKDB)
        return [ChunkHit(*r) for r in self._con.execute(
            f"SELECT seq, chunk_id, artifact_id, start_char, end_char, text, "
            f"array_inner_product(embedding, ?::FLOAT[{int(self.dim)}]) AS score "
            f"FROM chunks WHERE {where} ORDER BY score DESC, seq LIMIT ?",
            [list(embedding), *params, int(top_k)],
        ).fetchall()]



_NEVER = np.iinfo(np.int64).max

_SQL_TYPES = {
    "seq": "BIGINT", "version": "INTEGER", "chunk_index": "INTEGER", "n_terms": "INTEGER", "start_char": "INTEGER",
    "end_char": "INTEGER", "expires_at": "TIMESTAMP", "tags": "VARCHAR[]",
}
