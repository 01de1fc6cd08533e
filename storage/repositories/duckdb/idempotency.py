"""The `idempotency_keys` table on DuckDB: a retried generate request with the same key finds its artifact."""

from __future__ import annotations

from datetime import datetime

import duckdb

from artifact_mcp.storage.repositories.rows import IdempotencyRow

_COLUMNS = "principal_id, key, request_hash, artifact_id, job_id, created_at, expires_at"


class DuckDBIdempotencyKeys:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def find(self, principal_id: str, key: str, now: datetime) -> IdempotencyRow | None:
        row = self._con.execute(
            f"SELECT {_COLUMNS} FROM idempotency_keys WHERE principal_id = ? AND key = ? AND expires_at > ?",
            [principal_id, key, now],
        ).fetchone()
        return IdempotencyRow(*row) if row else None

    def insert(self, row: IdempotencyRow) -> None:
        self._con.execute(
            f"INSERT INTO idempotency_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [row.principal_id, row.key, row.request_hash, row.artifact_id, row.job_id, row.created_at,
             row.expires_at],
        )

    def delete(self, principal_id: str, key: str) -> None:
        self._con.execute("DELETE FROM idempotency_keys WHERE principal_id = ? AND key = ?", [principal_id, key])

    def delete_lapsed(self, now: datetime) -> None:
        self._con.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", [now])
