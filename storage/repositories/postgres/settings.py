"""The `kv` table on PostgreSQL: settings (the embedding model id) and secrets (cursor and link signing keys)."""

from __future__ import annotations

import secrets

from artifact_mcp.storage.repositories.postgres.connections import Connections


class PostgresSettings:
    def __init__(self, db: Connections) -> None:
        self._db = db

    def secret(self, key: str) -> bytes:
        """A random secret persisted in the catalog, created on first use: replicas that race to create it all
        get the one that was stored first (ON CONFLICT DO NOTHING, then read), so links and cursors signed by
        one replica verify on every other."""
        self._db.run("INSERT INTO kv VALUES (%s, %s) ON CONFLICT (key) DO NOTHING", [key, secrets.token_bytes(32)])
        row = self._db.one("SELECT value FROM kv WHERE key = %s", [key])
        assert row is not None
        return bytes(row[0])

    def get(self, key: str) -> str | None:
        row = self._db.one("SELECT value FROM kv WHERE key = %s", [key])
        return bytes(row[0]).decode() if row else None

    def set(self, key: str, value: str) -> None:
        self._db.run("INSERT INTO kv VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                     [key, value.encode()])
