"""The DuckDB backend: one connection to the catalog file, its migrations and transactions, and the
repositories over it (`Repositories`).

Not thread-safe on its own: the store serializes access with its lock and wraps multi-statement writes in
`transaction()`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import duckdb

from artifact_mcp.storage.clock import utcnow
from artifact_mcp.storage.repositories.duckdb.artifacts import DuckDBArtifacts
from artifact_mcp.storage.repositories.duckdb.chunks import DuckDBChunkStore
from artifact_mcp.storage.repositories.duckdb.generations import DuckDBGenerations
from artifact_mcp.storage.repositories.duckdb.idempotency import DuckDBIdempotencyKeys
from artifact_mcp.storage.repositories.duckdb.jobs import DuckDBJobs
from artifact_mcp.storage.repositories.duckdb.migrations import MIGRATIONS
from artifact_mcp.storage.repositories.duckdb.postings import DuckDBPostings
from artifact_mcp.storage.repositories.duckdb.settings import DuckDBSettings
from artifact_mcp.storage.repositories.duckdb.sources import DuckDBSources

log = logging.getLogger(__name__)

# Chunk vectors' width when the caller does not say (only reading a catalog, e.g. its schema version).
_DEFAULT_DIM = 384


class DuckDBRepositories:
    """Every repository over one DuckDB database. `embedding_dim` sizes the chunks' vectors."""

    def __init__(self, path: str, *, embedding_dim: int | None = None, memory_limit: str | None = None,
                 threads: int | None = None) -> None:
        self.path = path
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        config: dict[str, Any] = {}
        if memory_limit:
            config["memory_limit"] = memory_limit
        if threads:
            config["threads"] = threads
        self.con = duckdb.connect(path, config=config)
        self._migrate()
        con = self.con
        self.artifacts = DuckDBArtifacts(con)
        self.jobs = DuckDBJobs(con)
        self.chunks = DuckDBChunkStore(con, dim=embedding_dim or _DEFAULT_DIM)
        self.postings = DuckDBPostings(con)
        self.sources = DuckDBSources(con)
        self.generations = DuckDBGenerations(con)
        self.idempotency = DuckDBIdempotencyKeys(con)
        self.settings = DuckDBSettings(con)
        self.feed = None  # one owning process writes everything its search cache needs to know

    def close(self) -> None:
        with suppress(duckdb.Error):
            self.con.execute("CHECKPOINT")
        self.con.close()

    def _migrate(self) -> None:
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMP)"
        )
        applied = {r[0] for r in self.con.execute("SELECT version FROM schema_migrations").fetchall()}
        for version, description, statements in MIGRATIONS:
            if version in applied:
                continue
            with self.transaction():
                for sql in statements:
                    self.con.execute(sql)
                self.con.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", [version, description, utcnow()]
                )
            log.info("applied catalog migration %d: %s", version, description)

    def schema_version(self) -> int:
        row = self.con.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")
