"""The `kv` table on DuckDB: settings (the embedding model id) and secrets (cursor and link signing keys)."""

from __future__ import annotations

import secrets

import duckdb


class DuckDBSettings:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def secret(self, key: str) -> bytes:
        """A random secret persisted in the catalog (created on first use)."""
        row = self._con.execute("SELECT value FROM kv WHERE key = ?", [key]).fetchone()
        if row:
            return bytes(row[0])
        value = secrets.token_bytes(32)
        self._con.execute("INSERT INTO kv VALUES (?, ?)", [key, value])
        return value

    def get(self, key: str) -> str | None:
        row = self._con.execute("SELECT value FROM kv WHERE key = ?", [key]).fetchone()
        return bytes(row[0]).decode() if row else None

    def set(self, key: str, value: str) -> None:
        self._con.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", [key, value.encode()])
