"""The PostgreSQL backend: a connection pool to the shared catalog, its migrations and transactions, and the
repositories over it (`Repositories`).

Thread-safe: statements outside a transaction take a pooled connection each (autocommit), and a transaction
binds one connection to the thread that opened it (`connections.Connections`). Replicas share nothing but the
database, which settles every conflict (unique keys, row locks, `SKIP LOCKED` claims, an advisory lock around
migrations).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from psycopg_pool import ConnectionPool

from artifact_mcp.storage.clock import utcnow
from artifact_mcp.storage.repositories.postgres.artifacts import PostgresArtifacts
from artifact_mcp.storage.repositories.postgres.chunks import PostgresChunkStore
from artifact_mcp.storage.repositories.postgres.connections import Connections, Console
from artifact_mcp.storage.repositories.postgres.feed import PostgresChangeFeed
from artifact_mcp.storage.repositories.postgres.generations import PostgresGenerations
from artifact_mcp.storage.repositories.postgres.idempotency import PostgresIdempotencyKeys
from artifact_mcp.storage.repositories.postgres.jobs import LEASE, PostgresJobs
from artifact_mcp.storage.repositories.postgres.migrations import MIGRATION_LOCK, MIGRATIONS
from artifact_mcp.storage.repositories.postgres.postings import PostgresPostings
from artifact_mcp.storage.repositories.postgres.settings import PostgresSettings
from artifact_mcp.storage.repositories.postgres.sources import PostgresSources

log = logging.getLogger(__name__)

_DEFAULT_DIM = 384


def is_postgres_url(catalog: str) -> bool:
    return catalog.startswith(("postgresql://", "postgres://"))


def apply_migrations(db: Connections, migrations: list[tuple[int, str, list[str]]], lock: int) -> None:
    """Apply the missing migrations, each in its own transaction under an advisory lock held to its end:
    processes starting together apply each one once, in turn, and each sees the others' work before deciding."""
    for version, description, statements in migrations:
        with db.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [lock])
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                         "(version integer PRIMARY KEY, description text, applied_at timestamp)")
            if conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s", [version]).fetchone():
                continue
            for sql in statements:
                conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, %s)", [version, description, utcnow()])
        log.info("applied catalog migration %d: %s", version, description)


class PostgresRepositories:
    """Every repository over one PostgreSQL database. `embedding_dim` sizes the chunks' vectors."""

    def __init__(self, url: str, *, embedding_dim: int | None = None, min_size: int = 1, max_size: int = 8,
                 timeout: float = 5.0, job_lease_seconds: float = LEASE.total_seconds()) -> None:
        self.url = url
        # `timeout`: how long a request waits for a connection. Longer than any wait under load here; past it the
        # database counts as unreachable (503, `connections.translated`).
        # Naive UTC timestamps throughout, as the DuckDB backend stores them; the session's zone cannot shift
        # them because the columns are `timestamp` (without time zone).
        self.pool = ConnectionPool(url, min_size=min_size, max_size=max_size, timeout=timeout, open=False,
                                   kwargs={"autocommit": True, "options": "-c timezone=UTC"},
                                   # A connection is checked as it is handed out: after a database restart
                                   # the first requests get fresh connections, not dead ones.
                                   check=ConnectionPool.check_connection,
                                   # Give up a failed reconnection after 1 s instead of backing off for minutes:
                                   # the next request then starts a fresh attempt at once, so the first request
                                   # after the database is back gets a connection (psycopg_pool's backoff grows
                                   # to 8 s and more during an outage, and the request would time out waiting).
                                   reconnect_timeout=1.0,
                                   name="artifact-mcp")
        self.pool.open(wait=True, timeout=timeout)
        self.db = Connections(self.pool)
        self.con = Console(self.db)
        try:
            self._migrate()
        except BaseException:
            self.pool.close()
            raise
        self.artifacts = PostgresArtifacts(self.db)
        self.jobs = PostgresJobs(self.db, lease=timedelta(seconds=job_lease_seconds))
        self.chunks = PostgresChunkStore(self.db, dim=embedding_dim or _DEFAULT_DIM, writer=self.jobs.instance)
        self.feed = PostgresChangeFeed(self.db, url, writer=self.jobs.instance)
        self.postings = PostgresPostings(self.db)
        self.sources = PostgresSources(self.db)
        self.generations = PostgresGenerations(self.db)
        self.idempotency = PostgresIdempotencyKeys(self.db)
        self.settings = PostgresSettings(self.db)

    def close(self) -> None:
        self.feed.close()
        try:
            released = self.jobs.release(utcnow())
            if released:
                log.info("requeued %d running jobs for another process to finish", released)
        finally:
            self.pool.close()

    def _migrate(self) -> None:
        apply_migrations(self.db, MIGRATIONS, MIGRATION_LOCK)

    def schema_version(self) -> int:
        row = self.db.one("SELECT max(version) FROM schema_migrations")
        return int(row[0] or 0) if row else 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.transaction():
            yield
