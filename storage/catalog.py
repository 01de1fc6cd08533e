"""The DuckDB catalog: one row per artifact version, versioned migrations, parameterized SQL only.

The catalog is not thread-safe on its own; `ArtifactService` serializes access with a lock and
wraps multi-statement writes in `transaction()`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from artifact_mcp.storage.cursor import Position
from artifact_mcp.storage.migrations import MIGRATIONS
from artifact_mcp.storage.models import ListQuery, Scope

log = logging.getLogger(__name__)

COLUMNS: tuple[str, ...] = (
    "artifact_id", "org_id", "workspace_id", "namespace_id", "thread_id", "name", "description",
    "artifact_type", "version", "root_artifact_id", "is_latest", "replaced_by_version", "content_kind",
    "content_preview", "content_text", "file_name", "mime_type", "size_bytes", "sha256", "has_file",
    "blob_key", "summary", "keywords", "tags", "metadata", "source", "source_execution_id",
    "source_step_id", "source_tool", "scope", "status", "ttl_seconds", "expires_at", "is_pinned",
    "is_indexed", "indexed_at", "index_collection", "index_error", "index_attempts", "embedding_model_id",
    "chunk_count", "promoted_to_source_id", "created_by", "created_at", "updated_at",
    # migration 3: generated documents
    "document_type", "format", "generation_error",
)
_EXPIRED_SQL = "(expires_at IS NOT NULL AND NOT is_pinned AND expires_at <= ?)"
# content_text can be large: lists only need the preview.
_LIST_COLUMNS = ", ".join("NULL AS content_text" if c == "content_text" else c for c in COLUMNS)
_ALL_COLUMNS = ", ".join(COLUMNS)


def utcnow() -> datetime:
    """Naive UTC with microsecond precision: what DuckDB TIMESTAMP stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_us(ts: datetime) -> int:
    return int(ts.replace(tzinfo=UTC).timestamp()) * 1_000_000 + ts.microsecond


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(microseconds=us)


class Catalog:
    def __init__(self, path: str, *, memory_limit: str | None = None, threads: int | None = None) -> None:
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

    def close(self) -> None:
        with suppress(duckdb.Error):
            self.con.execute("CHECKPOINT")
        self.con.close()

    # --- schema -----------------------------------------------------------------------------

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

    # --- settings -----------------------------------------------------------------------------

    def secret(self, key: str) -> bytes:
        """A random secret persisted in the catalog (created on first use)."""
        row = self.con.execute("SELECT value FROM kv WHERE key = ?", [key]).fetchone()
        if row:
            return bytes(row[0])
        value = secrets.token_bytes(32)
        self.con.execute("INSERT INTO kv VALUES (?, ?)", [key, value])
        return value

    def get_setting(self, key: str) -> str | None:
        row = self.con.execute("SELECT value FROM kv WHERE key = ?", [key]).fetchone()
        return bytes(row[0]).decode() if row else None

    def set_setting(self, key: str, value: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", [key, value.encode()])

    # --- rows ---------------------------------------------------------------------------------

    @staticmethod
    def _row(values: Sequence[Any]) -> dict[str, Any]:
        row = dict(zip(COLUMNS, values, strict=False))
        meta = row.get("metadata")
        row["metadata"] = json.loads(meta) if isinstance(meta, str) else (meta or {})
        if len(values) > len(COLUMNS):
            row["is_expired"] = bool(values[len(COLUMNS)])
        return row

    def insert(self, row: dict[str, Any]) -> None:
        # NULL columns are left out (no column has another default): DuckDB's cost grows with every bound
        # parameter, and a new artifact has ~18 NULLs.
        columns = [c for c in COLUMNS if row.get(c) is not None]
        values = [json.dumps(row["metadata"]) if c == "metadata" else row[c] for c in columns]
        self.con.execute(
            f"INSERT INTO artifacts ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})", values
        )

    def insert_new(self, row: dict[str, Any]) -> bool:
        """Insert a row in its own (auto-committed) transaction; False if its artifact_id already exists.

        Cheaper than checking first: fresh ids, the usual case, cost one statement instead of three."""
        try:
            self.insert(row)
        except duckdb.ConstraintException:
            if self.con.execute("SELECT 1 FROM artifacts WHERE artifact_id = ?", [row["artifact_id"]]).fetchone():
                return False
            raise
        return True

    def update(self, artifact_id: str, fields: dict[str, Any]) -> None:
        if not fields:
            return
        unknown = set(fields) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown columns {sorted(unknown)}")
        assignments = ", ".join(f"{c} = ?" for c in fields)
        values = [json.dumps(v) if c == "metadata" else v for c, v in fields.items()]
        self.con.execute(f"UPDATE artifacts SET {assignments} WHERE artifact_id = ?", [*values, artifact_id])

    def get(self, artifact_id: str, now: datetime) -> dict[str, Any] | None:
        row = self.con.execute(
            f"SELECT {_ALL_COLUMNS}, {_EXPIRED_SQL} FROM artifacts WHERE artifact_id = ?", [now, artifact_id]
        ).fetchone()
        return self._row(row) if row else None

    def get_many(self, artifact_ids: Sequence[str], now: datetime) -> dict[str, dict[str, Any]]:
        """Rows by id, without content_text (search results need metadata only)."""
        if not artifact_ids:
            return {}
        # One placeholder per id: an IN list of parameters uses the primary-key index; list_contains would scan.
        marks = ", ".join("?" for _ in artifact_ids)
        rows = self.con.execute(
            f"SELECT {_LIST_COLUMNS}, {_EXPIRED_SQL} FROM artifacts WHERE artifact_id IN ({marks})",
            [now, *artifact_ids],
        ).fetchall()
        out = [self._row(r) for r in rows]
        return {r["artifact_id"]: r for r in out}

    def versions(self, root_artifact_id: str, now: datetime) -> list[dict[str, Any]]:
        rows = self.con.execute(
            f"SELECT {_LIST_COLUMNS}, {_EXPIRED_SQL} FROM artifacts WHERE root_artifact_id = ? ORDER BY version",
            [now, root_artifact_id],
        ).fetchall()
        return [self._row(r) for r in rows]

    def latest(self, root_artifact_id: str, now: datetime) -> dict[str, Any] | None:
        row = self.con.execute(
            f"SELECT {_ALL_COLUMNS}, {_EXPIRED_SQL} FROM artifacts WHERE root_artifact_id = ? "
            "ORDER BY version DESC LIMIT 1",
            [now, root_artifact_id],
        ).fetchone()
        return self._row(row) if row else None

    def delete(self, artifact_ids: Sequence[str]) -> None:
        self.con.execute("DELETE FROM artifacts WHERE list_contains(?, artifact_id)", [list(artifact_ids)])

    # --- listing --------------------------------------------------------------------------------

    @staticmethod
    def _filters(scope: Scope, query: ListQuery, now: datetime) -> tuple[list[str], list[Any]]:
        where = ["org_id = ?", "workspace_id = ?", "namespace_id = ?"]
        params: list[Any] = [scope.org_id, scope.workspace_id, scope.namespace_id]
        if query.latest_only:
            where.append("is_latest")
        if not query.include_expired:
            where.append(f"NOT {_EXPIRED_SQL}")
            params.append(now)
        if query.thread_id is not None:
            where.append("thread_id = ?")
            params.append(query.thread_id)
        if query.artifact_types:
            where.append("list_contains(?, artifact_type)")
            params.append(list(query.artifact_types))
        if query.status is not None:
            where.append("status = ?")
            params.append(query.status)
        if query.tags:
            where.append("list_has_all(tags, ?)")
            params.append(list(query.tags))
        if query.created_by is not None:
            where.append("created_by = ?")
            params.append(query.created_by)
        return where, params

    def list(
        self, scope: Scope, query: ListQuery, after: Position | None, now: datetime
    ) -> tuple[list[dict[str, Any]], int]:
        """One page (newest first) after `after`, plus the total matching the filters.

        Two steps, because DuckDB's cost is per column: the top-N sort reads only the filter and sort columns
        and returns row ids, then the page's rows are fetched whole by row id (sorting the full rows instead
        costs ~25 ms at 100k). The sort is also narrowed: rows are appended in created_at order, so the page
        is first looked for in a time window just below its upper bound, sized from the filters' average
        density for ~4 pages, and DuckDB's zone maps skip the rest of the table. If the window holds fewer
        rows than the page needs, it is widened, then dropped. Any window gives exact results: every row
        inside it sorts before every row outside it."""
        where, params = self._filters(scope, query, now)
        total, oldest, newest = self.con.execute(
            f"SELECT count(*), min(created_at), max(created_at) FROM artifacts WHERE {' AND '.join(where)}", params
        ).fetchone()
        if not total:
            return [], 0
        page_where, page_params = list(where), list(params)
        upper = newest
        if after is not None:
            created = from_us(after.created_at_us)
            # `created_at <= ?` on its own lets zone maps skip everything newer than the cursor.
            page_where.append("created_at <= ? AND (created_at < ? OR artifact_id < ?)")
            page_params += [created, created, after.artifact_id]
            upper = min(upper, created)
        want = query.limit + 1
        width = (newest - oldest) * (4 * want / total)
        for factor in (1, 16, None):
            lower = upper - width * factor if factor is not None else None
            if lower is not None and lower <= oldest:
                lower = None
            window = [] if lower is None else ["created_at >= ?"]
            row_ids = [r[0] for r in self.con.execute(
                f"SELECT rowid FROM artifacts WHERE {' AND '.join(page_where + window)} "
                "ORDER BY created_at DESC, artifact_id DESC LIMIT ?",
                [*page_params, *([] if lower is None else [lower]), want],
            ).fetchall()]
            if lower is None or len(row_ids) >= want:
                break
        if not row_ids:
            return [], int(total)
        # No write can come between the two statements: the caller holds the store lock, and this process is
        # the only writer.
        fetched = self.con.execute(
            f"SELECT rowid, {_LIST_COLUMNS}, {_EXPIRED_SQL} FROM artifacts WHERE list_contains(?, rowid)",
            [now, row_ids],
        ).fetchall()
        by_id = {r[0]: r[1:] for r in fetched}
        return [self._row(by_id[i]) for i in row_ids], int(total)

    # --- housekeeping -----------------------------------------------------------------------------

    def expired(self, now: datetime, limit: int = 1000) -> list[tuple[str, str]]:
        rows = self.con.execute(
            f"SELECT artifact_id, root_artifact_id FROM artifacts WHERE {_EXPIRED_SQL} LIMIT ?", [now, limit]
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def referenced_blob_keys(self, keys: Sequence[str] | None = None) -> set[str]:
        if keys is None:
            rows = self.con.execute("SELECT DISTINCT blob_key FROM artifacts WHERE blob_key IS NOT NULL").fetchall()
        else:
            rows = self.con.execute(
                "SELECT DISTINCT blob_key FROM artifacts WHERE list_contains(?, blob_key)", [list(keys)]
            ).fetchall()
        return {r[0] for r in rows}

    def count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM artifacts").fetchone()[0])
