"""The `artifacts` table on DuckDB: one row per artifact version, parameterized SQL only."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb

from artifact_mcp.storage.clock import from_us
from artifact_mcp.storage.cursor import Position
from artifact_mcp.storage.models import ListQuery, Scope
from artifact_mcp.storage.repositories.protocols import DuplicateKey
from artifact_mcp.storage.repositories.rows import ARTIFACT_COLUMNS, ArtifactRef, ArtifactRow

COLUMNS = ARTIFACT_COLUMNS
_N = len(COLUMNS)
_EXPIRED_SQL = "(expires_at IS NOT NULL AND NOT is_pinned AND expires_at <= ?)"
# content_text can be large: lists only need the preview.
_LIST_COLUMNS = ", ".join("NULL AS content_text" if c == "content_text" else c for c in COLUMNS)
_ALL_COLUMNS = ", ".join(COLUMNS)


class DuckDBArtifacts:
    """SQL over `artifacts`. Not thread-safe on its own: the store serializes access with its lock."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    # --- rows ---------------------------------------------------------------------------------

    @staticmethod
    def _row(values: Sequence[Any]) -> ArtifactRow:
        row = ArtifactRow(*values[:_N])
        meta = row.metadata
        row.metadata = json.loads(meta) if isinstance(meta, str) else (meta or {})
        if len(values) > _N:
            row.is_expired = bool(values[_N])
        return row

    def insert(self, row: ArtifactRow) -> None:
        # NULL columns are left out (no column has another default): DuckDB's cost grows with every bound
        # parameter, and a new artifact has ~18 NULLs.
        columns = [c for c in COLUMNS if getattr(row, c) is not None]
        values = [json.dumps(row.metadata) if c == "metadata" else getattr(row, c) for c in columns]
        try:
            self.con.execute(
                f"INSERT INTO artifacts ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})", values
            )
        except duckdb.ConstraintException as exc:
            # (Nothing can be read to check: the failed statement aborted the caller's transaction.)
            if "duplicate key" in str(exc).lower():
                raise DuplicateKey(row.artifact_id) from exc
            raise

    def update(self, artifact_id: str, changes: Mapping[str, Any]) -> None:
        if not changes:
            return
        unknown = set(changes) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown columns {sorted(unknown)}")
        assignments = ", ".join(f"{c} = ?" for c in changes)
        values = [json.dumps(v) if c == "metadata" else v for c, v in changes.items()]
        self.con.execute(f"UPDATE artifacts SET {assignments} WHERE artifact_id = ?", [*values, artifact_id])

    def get(self, artifact_id: str, now: datetime) -> ArtifactRow | None:
        row = self.con.execute(
            f"SELECT {_ALL_COLUMNS}, {_EXPIRED_SQL} FROM artifacts WHERE artifact_id = ?", [now, artifact_id]
        ).fetchone()
        return self._row(row) if row else None

    def get_many(self, artifact_ids: Sequence[str], now: datetime) -> dict[str, ArtifactRow]:
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
        return {r.artifact_id: r for r in out}

    def fields_of(self, artifact_ids: Sequence[str], columns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """These columns of these rows, by id: a search hit's summary needs 17 of the 45, and every column read
        costs (~3.6 ms for 10 whole rows against ~2 ms for the 17)."""
        unknown = set(columns) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown columns {sorted(unknown)}")
        if not artifact_ids:
            return {}
        cols = ["artifact_id", *(c for c in columns if c != "artifact_id")]
        marks = ", ".join("?" for _ in artifact_ids)
        rows = self.con.execute(
            f"SELECT {', '.join(cols)} FROM artifacts WHERE artifact_id IN ({marks})", list(artifact_ids)
        ).fetchall()
        return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}

    def versions(self, root_artifact_id: str, now: datetime) -> list[ArtifactRow]:
        rows = self.con.execute(
            f"SELECT {_LIST_COLUMNS}, {_EXPIRED_SQL} FROM artifacts WHERE root_artifact_id = ? ORDER BY version",
            [now, root_artifact_id],
        ).fetchall()
        return [self._row(r) for r in rows]

    def latest(self, root_artifact_id: str, now: datetime) -> ArtifactRow | None:
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
    ) -> tuple[list[ArtifactRow], int]:
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

    # --- material and re-indexing ---------------------------------------------------------------

    def thread_material(self, scope: Scope, thread_id: str, now: datetime, limit: int) -> list[str]:
        rows = self.con.execute(
            "SELECT artifact_id FROM artifacts WHERE org_id = ? AND workspace_id = ? AND namespace_id = ? "
            f"AND thread_id = ? AND is_latest AND NOT {_EXPIRED_SQL} "
            # Documents generated from the thread are not its material (no summaries of summaries, and the
            # material stays the same between retries); name them in artifact_ids to include them.
            "AND document_type IS NULL ORDER BY created_at, artifact_id LIMIT ?",
            [scope.org_id, scope.workspace_id, scope.namespace_id, thread_id, now, limit],
        ).fetchall()
        return [r[0] for r in rows]

    def latest_refs(self) -> list[ArtifactRef]:
        rows = self.con.execute(
            "SELECT artifact_id, org_id, workspace_id, namespace_id FROM artifacts WHERE is_latest"
        ).fetchall()
        return [ArtifactRef(*r) for r in rows]

    def reset_index_of_latest(self) -> None:
        self.con.execute(
            "UPDATE artifacts SET is_indexed = false, chunk_count = 0, index_collection = NULL, "
            "embedding_model_id = NULL WHERE is_latest"
        )
