"""API token records in the PostgreSQL catalog's `tokens` table: what every replica verifies against.

Read per request by primary key (no cache), so a revocation made anywhere (`artifact-mcp token revoke --catalog
postgresql://…`) is refused everywhere on the next request. Edits lock the table (writers take turns; readers
are not blocked). The pool is the token store's own and small: the HTTP auth middleware verifies before the
catalog's store has opened, and a token check must not queue behind a batch of index writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from artifact_mcp.storage.repositories.postgres.connections import Connections
from artifact_mcp.storage.repositories.postgres.migrations import MIGRATION_LOCK, MIGRATIONS
from artifact_mcp.storage.repositories.postgres.settings import PostgresSettings
from artifact_mcp.storage.tokens import TokenRecord


class PostgresTokenRecords:
    reads_block = True

    def __init__(self, url: str, *, max_size: int = 4, timeout: float = 10.0) -> None:
        self.pool = ConnectionPool(url, min_size=0, max_size=max_size, timeout=timeout, open=True,
                                   kwargs={"autocommit": True, "options": "-c timezone=UTC"},
                                   # A connection is checked as it is handed out: after a database restart
                                   # the first requests get fresh connections, not dead ones.
                                   check=ConnectionPool.check_connection,
                                   # Give up a failed reconnection after 1 s instead of backing off for minutes:
                                   # the next request then starts a fresh attempt at once, so the first request
                                   # after the database is back gets a connection (psycopg_pool's backoff grows
                                   # to 8 s and more during an outage, and the request would time out waiting).
                                   reconnect_timeout=1.0,
                                   name="artifact-mcp-tokens")
        self.db = Connections(self.pool)
        self._schema_ready = False

    def _ensure_schema(self) -> None:
        """`token create` may run before any server has opened the catalog: apply the migrations it needs."""
        if self._schema_ready:
            return
        from artifact_mcp.storage.repositories.postgres.database import apply_migrations

        apply_migrations(self.db, MIGRATIONS, MIGRATION_LOCK)
        self._schema_ready = True

    def load(self) -> dict[str, TokenRecord]:
        self._ensure_schema()
        rows = self.db.all("SELECT record FROM tokens ORDER BY created_at")
        return {r.token_id: r for r in (TokenRecord.model_validate(row[0]) for row in rows)}

    def get(self, token_id: str) -> TokenRecord | None:
        self._ensure_schema()
        row = self.db.one("SELECT record FROM tokens WHERE token_id = %s", [token_id])
        return TokenRecord.model_validate(row[0]) if row else None

    @contextmanager
    def edit(self) -> Iterator[dict[str, TokenRecord]]:
        self._ensure_schema()
        with self.db.transaction() as conn:
            conn.execute("LOCK TABLE tokens IN SHARE ROW EXCLUSIVE MODE")
            before = {row[0]: TokenRecord.model_validate(row[1])
                      for row in conn.execute("SELECT token_id, record FROM tokens").fetchall()}
            records = dict(before)
            yield records
            for token_id, record in records.items():
                if before.get(token_id) == record:
                    continue
                conn.execute(
                    "INSERT INTO tokens (token_id, token_hash, record, created_at, revoked_at) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (token_id) DO UPDATE SET record = EXCLUDED.record, "
                    "revoked_at = EXCLUDED.revoked_at",
                    [token_id, record.secret_hash, Jsonb(record.model_dump(mode="json")),
                     record.created_at.replace(tzinfo=None), record.revoked_at.replace(tzinfo=None)
                     if record.revoked_at else None])
            gone = set(before) - set(records)
            if gone:
                conn.execute("DELETE FROM tokens WHERE token_id = ANY(%s)", [sorted(gone)])

    def shared_secret(self, name: str) -> bytes:
        self._ensure_schema()
        return PostgresSettings(self.db).secret(name)

    def close(self) -> None:
        self.pool.close()

