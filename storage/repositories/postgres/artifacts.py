"""The `artifacts` table on PostgreSQL: one row per artifact version, parameterized SQL only.

Rows are read column by column (DuckDB's backend reads a JSON card instead, because DuckDB's cost is per column;
PostgreSQL stores rows whole, so a card would only double the writes). `metadata` is jsonb.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg

from artifact_mcp.storage.clock import from_us
from artifact_mcp.storage.cursor import Position
from artifact_mcp.storage.errors import Conflict
from artifact_mcp.storage.models import ListQuery, Scope, ThreadSummary
from artifact_mcp.storage.repositories import sqlfilters
from artifact_mcp.storage.repositories.postgres.connections import Connections
from artifact_mcp.storage.repositories.protocols import DuplicateKey
from artifact_mcp.storage.repositories.rows import ARTIFACT_COLUMNS, ArtifactRef, ArtifactRow, ArtifactTally

COLUMNS = ARTIFACT_COLUMNS
_EXPIRED_SQL = sqlfilters.expired_sql(sqlfilters.POSTGRES)
_ALL_COLUMNS = ", ".join(COLUMNS)
_LIST_COLUMNS = ", ".join("NULL" if c == "content_text" else c for c in COLUMNS)


def _value(column: str, value: Any) -> Any:
    return json.dumps(value) if column == "metadata" else value


def _mark(column: str) -> str:
    return "%s::jsonb" if column == "metadata" else "%s"


class PostgresArtifacts:
    def __init__(self, db: Connections) -> None:
        self._db = db

    @staticmethod
    def _row(values: Sequence[Any]) -> ArtifactRow:
        row = ArtifactRow(*values[:-1])
        row.metadata = row.metadata or {}
        row.keywords = list(row.keywords or [])
        row.tags = list(row.tags or [])
        row.is_expired = bool(values[-1])
        return row

    def insert(self, row: ArtifactRow) -> None:
        columns = [c for c in COLUMNS if getattr(row, c) is not None]
        try:
            self._db.run(
                f"INSERT INTO artifacts ({', '.join(columns)}) VALUES ({', '.join(_mark(c) for c in columns)})",
                [_value(c, getattr(row, c)) for c in columns])
        except psycopg.errors.UniqueViolation as exc:
            if exc.diag.constraint_name == "artifacts_root":
                raise Conflict(
                    f"artifact {row.root_artifact_id} got version {row.version} from another request at the same "
                    "time; re-read it (get_artifact) and apply your change again") from exc
            raise DuplicateKey(row.artifact_id) from exc

    def update(self, artifact_id: str, changes: Mapping[str, Any]) -> None:
        if not changes:
            return
        unknown = set(changes) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown columns {sorted(unknown)}")
        assignments = ", ".join(f"{c} = {_mark(c)}" for c in changes)
        self._db.run(f"UPDATE artifacts SET {assignments} WHERE artifact_id = %s",
                     [*(_value(c, v) for c, v in changes.items()), artifact_id])

    def update_many(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        # One statement per row, in one round trip each: PostgreSQL plans a short UPDATE by primary key in
        # microseconds, so the set-based form DuckDB needs buys little here.
        for artifact_id, fields in changes.items():
            self.update(artifact_id, fields)

    def get(self, artifact_id: str, now: datetime) -> ArtifactRow | None:
        row = self._db.one(f"SELECT {_ALL_COLUMNS}, {_EXPIRED_SQL} FROM artifacts WHERE artifact_id = %s",
                           [now, artifact_id])
        return self._row(row) if row else None

    def get_many(self, artifact_ids: Sequence[str], now: datetime, *,
                 with_content: bool = False) -> dict[str, ArtifactRow]:
        if not artifact_ids:
            return {}
        rows = self._db.all(
            f"SELECT {_ALL_COLUMNS if with_content else _LIST_COLUMNS}, {_EXPIRED_SQL} FROM artifacts "
            "WHERE artifact_id = ANY(%s)", [now, list(artifact_ids)])
        return {r.artifact_id: r for r in map(self._row, rows)}

    def fields_of(self, artifact_ids: Sequence[str], columns: Sequence[str]) -> dict[str, dict[str, Any]]:
        unknown = set(columns) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown columns {sorted(unknown)}")
        if not artifact_ids:
            return {}
        cols = ["artifact_id", *(c for c in columns if c != "artifact_id")]
        rows = self._db.all(f"SELECT {', '.join(cols)} FROM artifacts WHERE artifact_id = ANY(%s)",
                            [list(artifact_ids)])
        return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}

    def versions(self, root_artifact_id: str, now: datetime) -> list[ArtifactRow]:
        rows = self._db.all(f"SELECT {_LIST_COLUMNS}, {_EXPIRED_SQL} FROM artifacts WHERE root_artifact_id = %s "
                            "ORDER BY version", [now, root_artifact_id])
        return [self._row(r) for r in rows]

    def latest(self, root_artifact_id: str, now: datetime) -> ArtifactRow | None:
        row = self._db.one(f"SELECT {_ALL_COLUMNS}, {_EXPIRED_SQL} FROM artifacts WHERE root_artifact_id = %s "
                           "ORDER BY version DESC LIMIT 1", [now, root_artifact_id])
        return self._row(row) if row else None

    def delete(self, artifact_ids: Sequence[str]) -> None:
        self._db.run("DELETE FROM artifacts WHERE artifact_id = ANY(%s)", [list(artifact_ids)])

    def lock(self, artifact_ids: Sequence[str]) -> None:
        if artifact_ids:
            # In id order, so two writers locking overlapping sets queue rather than deadlock.
            self._db.all("SELECT artifact_id FROM artifacts WHERE artifact_id = ANY(%s) ORDER BY artifact_id "
                         "FOR UPDATE", [sorted(artifact_ids)])

    # --- listing --------------------------------------------------------------------------------

    @staticmethod
    def _filters(scope: Scope, query: ListQuery, now: datetime) -> tuple[list[str], list[Any]]:
        return sqlfilters.list_filters(scope, query, now, sqlfilters.POSTGRES)

    def list(self, scope: Scope, query: ListQuery, after: Position | None,
             now: datetime) -> tuple[list[ArtifactRow], int]:
        """One page (newest first, or oldest first with `query.order`) after `after`, plus the total matching the
        filters: a keyset page on the (scope, created_at, artifact_id) index."""
        where, params = self._filters(scope, query, now)
        page_where, page_params = list(where), list(params)
        asc = query.order == "oldest"
        if after is not None:
            created = from_us(after.created_at_us)
            page_where.append(f"(created_at, artifact_id) {'>' if asc else '<'} (%s, %s)")
            page_params += [created, after.artifact_id]
        total_row = self._db.one(f"SELECT count(*) FROM artifacts WHERE {' AND '.join(where)}", params)
        total = int(total_row[0]) if total_row else 0
        if not total:
            return [], 0
        rows = self._db.all(
            f"SELECT {_LIST_COLUMNS}, {_EXPIRED_SQL} FROM artifacts WHERE {' AND '.join(page_where)} "
            f"ORDER BY created_at {'ASC' if asc else 'DESC'}, artifact_id {'ASC' if asc else 'DESC'} LIMIT %s",
            [now, *page_params, query.limit + 1])
        return [self._row(r) for r in rows], total

    # --- housekeeping -----------------------------------------------------------------------------

    def expired(self, now: datetime, limit: int = 1000) -> list[tuple[str, str]]:
        rows = self._db.all(f"SELECT artifact_id, root_artifact_id FROM artifacts WHERE {_EXPIRED_SQL} LIMIT %s",
                            [now, limit])
        return [(r[0], r[1]) for r in rows]

    def referenced_blob_keys(self, keys: Sequence[str] | None = None) -> set[str]:
        if keys is None:
            rows = self._db.all("SELECT DISTINCT blob_key FROM artifacts WHERE blob_key IS NOT NULL")
        else:
            rows = self._db.all("SELECT DISTINCT blob_key FROM artifacts WHERE blob_key = ANY(%s)", [list(keys)])
        return {r[0] for r in rows}

    def count(self) -> int:
        row = self._db.one("SELECT count(*) FROM artifacts")
        return int(row[0]) if row else 0

    # --- material and re-indexing ---------------------------------------------------------------

    def thread_material(self, scope: Scope, thread_id: str, now: datetime, limit: int) -> list[str]:
        rows = self._db.all(
            "SELECT artifact_id FROM artifacts WHERE org_id = %s AND workspace_id = %s AND namespace_id = %s "
            f"AND thread_id = %s AND is_latest AND NOT {_EXPIRED_SQL} "
            "AND document_type IS NULL ORDER BY created_at, artifact_id LIMIT %s",
            [scope.org_id, scope.workspace_id, scope.namespace_id, thread_id, now, limit])
        return [r[0] for r in rows]

    def threads(self, scope: Scope, now: datetime, limit: int) -> list[ThreadSummary]:
        rows = self._db.all(
            "SELECT thread_id, count(*), min(created_at), max(created_at) FROM artifacts WHERE org_id = %s "
            "AND workspace_id = %s AND namespace_id = %s AND thread_id IS NOT NULL AND is_latest "
            f"AND NOT {_EXPIRED_SQL} "
            "GROUP BY thread_id ORDER BY max(created_at) DESC, thread_id LIMIT %s",
            [scope.org_id, scope.workspace_id, scope.namespace_id, now, limit])
        return [ThreadSummary(thread_id=r[0], artifacts=r[1], first_at=r[2], last_at=r[3]) for r in rows]

    def latest_refs(self) -> list[ArtifactRef]:
        rows = self._db.all("SELECT artifact_id, org_id, workspace_id, namespace_id FROM artifacts WHERE is_latest")
        return [ArtifactRef(*r) for r in rows]

    def reset_index_of_latest(self) -> None:
        self._db.run("UPDATE artifacts SET is_indexed = false, chunk_count = 0, index_collection = NULL, "
                     "embedding_model_id = NULL WHERE is_latest")

    # --- counts, import, export ---------------------------------------------------------------------

    def tally(self, scope: Scope, now: datetime) -> ArtifactTally:
        tenant = "org_id = %s AND workspace_id = %s AND namespace_id = %s"
        params = [scope.org_id, scope.workspace_id, scope.namespace_id]
        by_type: dict[str, int] = {}
        by_status: dict[str, int] = {}
        for artifact_type, status, n in self._db.all(
                f"SELECT artifact_type, status, count(*) FROM artifacts WHERE {tenant} AND is_latest "
                f"AND NOT {_EXPIRED_SQL} GROUP BY artifact_type, status", [*params, now]):
            by_type[artifact_type] = by_type.get(artifact_type, 0) + int(n)
            by_status[status] = by_status.get(status, 0) + int(n)
        versions, content_bytes = self._db.one(
            f"SELECT count(*), coalesce(sum(size_bytes), 0) FROM artifacts WHERE {tenant}", params) or (0, 0)
        # Identical bytes share one key: each key counts once.
        blobs, blob_bytes = self._db.one(
            "SELECT count(*), coalesce(sum(size), 0) FROM (SELECT blob_key, max(size_bytes) AS size FROM artifacts "
            f"WHERE {tenant} AND blob_key IS NOT NULL GROUP BY blob_key) b", params) or (0, 0)
        return ArtifactTally(by_type=by_type, by_status=by_status, versions=int(versions),
                             content_bytes=int(content_bytes), blobs=int(blobs), blob_bytes=int(blob_bytes))

    def archive_ids(self, scope: Scope) -> list[str]:
        rows = self._db.all("SELECT artifact_id FROM artifacts WHERE org_id = %s AND workspace_id = %s AND "
                            "namespace_id = %s ORDER BY created_at, artifact_id",
                            [scope.org_id, scope.workspace_id, scope.namespace_id])
        return [r[0] for r in rows]

    def latest_by_metadata(self, scope: Scope, key: str, values: Sequence[str],
                           thread_id: str | None) -> dict[str, ArtifactRow]:
        if not values:
            return {}
        rows = self._db.all(
            f"SELECT {_LIST_COLUMNS}, false, metadata ->> %s AS v FROM artifacts "
            "WHERE org_id = %s AND workspace_id = %s AND namespace_id = %s AND is_latest "
            "AND thread_id IS NOT DISTINCT FROM %s AND metadata ->> %s = ANY(%s) ORDER BY created_at",
            [key, scope.org_id, scope.workspace_id, scope.namespace_id, thread_id, key, list(values)])
        return {r[-1]: self._row(r[:-1]) for r in rows}

