"""The `idempotency_keys` table on PostgreSQL: a retried generate request with the same key finds its artifact."""

from __future__ import annotations

from datetime import datetime

from artifact_mcp.storage.repositories.postgres.connections import Connections
from artifact_mcp.storage.repositories.protocols import DuplicateKey
from artifact_mcp.storage.repositories.rows import IdempotencyRow

_COLUMNS = "principal_id, key, request_hash, artifact_id, job_id, created_at, expires_at"


class PostgresIdempotencyKeys:
    def __init__(self, db: Connections) -> None:
        self._db = db

    def find(self, principal_id: str, key: str, now: datetime) -> IdempotencyRow | None:
        row = self._db.one(
            f"SELECT {_COLUMNS} FROM idempotency_keys WHERE principal_id = %s AND key = %s AND expires_at > %s",
            [principal_id, key, now],
        )
        return IdempotencyRow(*row) if row else None

    def insert(self, row: IdempotencyRow) -> None:
        """Raises DuplicateKey when another request (on any replica) stored this key first: the primary key
        settles the race, so 20 identical calls spread over replicas make one artifact."""
        import psycopg

        try:
            self._db.run(
                f"INSERT INTO idempotency_keys ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [row.principal_id, row.key, row.request_hash, row.artifact_id, row.job_id, row.created_at,
                 row.expires_at],
            )
        except psycopg.errors.UniqueViolation as exc:
            raise DuplicateKey(f"{row.principal_id}/{row.key}") from exc

    def delete(self, principal_id: str, key: str) -> None:
        self._db.run("DELETE FROM idempotency_keys WHERE principal_id = %s AND key = %s", [principal_id, key])

    def delete_lapsed(self, now: datetime) -> None:
        self._db.run("DELETE FROM idempotency_keys WHERE expires_at <= %s", [now])
