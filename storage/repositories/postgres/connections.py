"""Where a PostgreSQL repository's statement runs: the calling thread's open transaction, else a pooled
connection of its own in autocommit (one statement, one transaction).

The repository interfaces leave transactions to the caller (`Repositories.transaction()`), so a transaction is
bound to the thread that opened it: every statement that thread runs inside the block goes to that connection,
and other threads keep using the pool meanwhile. A nested `transaction()` is a savepoint.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from artifact_mcp.storage.errors import Contention, Unavailable


def describe(pool: ConnectionPool) -> str:
    """host:port/dbname of the pool's database: for messages (never the password)."""
    info = conninfo_to_dict(pool.conninfo)
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def translated(pool: ConnectionPool) -> Iterator[None]:
    """A lost or unreachable database becomes `Unavailable` (HTTP 503, a tool error that says so): the pool
    reconnects by itself once the database is back, so the caller only has to retry."""
    try:
        yield
    except psycopg.errors.TransactionRollback as exc:
        # An OperationalError too, but the database is fine: it chose this transaction to settle a deadlock or
        # a serialization failure with another one (rolled back whole: the request can simply be sent again).
        raise Contention("another request changed the same artifact or job at the same moment and the database "
                         f"rolled this one back ({_first_line(exc)}); nothing was applied: send it again") from exc
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise Unavailable(f"the catalog database {describe(pool)} is unreachable ({_first_line(exc)}); the server "
                          "reconnects by itself when it is back: retry in a few seconds") from exc


class Connections:
    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self._local = threading.local()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        bound = getattr(self._local, "conn", None)
        if bound is not None:
            yield bound
            return
        with translated(self.pool), self.pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        bound = getattr(self._local, "conn", None)
        if bound is not None:
            with bound.transaction():
                yield bound
            return
        with translated(self.pool), self.pool.connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    yield conn
            finally:
                self._local.conn = None

    @property
    def in_transaction(self) -> bool:
        return getattr(self._local, "conn", None) is not None

    def all(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        with self.connection() as conn:
            return conn.execute(sql, params).fetchone()

    def run(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """Execute; the number of rows it touched."""
        with self.connection() as conn:
            return conn.execute(sql, params).rowcount

    def many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.connection() as conn, conn.cursor() as cur:
            cur.executemany(sql, rows)

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Bulk insert with COPY (binary would need every type declared; text COPY is ~10x executemany)."""
        with self.connection() as conn, conn.cursor() as cur, cur.copy(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)


class _Fetched:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self._rows = rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class Console:
    """`execute(sql, params)` on the catalog, fetched at once: what tests and benchmarks use to look inside a
    catalog (`ArtifactStore.con`), as they do with a DuckDB connection. Never used by the store itself."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> _Fetched:
        with self._db.connection() as conn:
            cur = conn.execute(sql, params)
            return _Fetched(cur.fetchall() if cur.description else [])
