"""The `artifacts` table on DuckDB: one row per artifact version, parameterized SQL only.

Rows are read from their `card`: every column but `content_text`, as one JSON text (migration 4). DuckDB's cost is
per column read (a 50-row page's 44 columns cost several times its cards: 1.2-11 ms against ~1 ms on the shared
2-core machine, depending on its load), and the columns stay for what SQL filters and sorts on. Every write here
keeps the card in step in the same statement: an insert writes it, an update merges its changes into it
(`json_merge_patch`; a null removes a key, which reads back as None). Nothing else writes this table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import duckdb

from artifact_mcp.storage.clock import from_us
from artifact_mcp.storage.cursor import Position
from artifact_mcp.storage.models import ListQuery, Scope, ThreadSummary
from artifact_mcp.storage.repositories import sqlfilters
from artifact_mcp.storage.repositories.protocols import DuplicateKey
from artifact_mcp.storage.repositories.rows import ARTIFACT_COLUMNS, ArtifactRef, ArtifactRow, ArtifactTally

COLUMNS = ARTIFACT_COLUMNS
CARD_COLUMNS = tuple(c for c in COLUMNS if c != "content_text")
_EXPIRED_SQL = sqlfilters.expired_sql(sqlfilters.DUCKDB)
# What `_row` reads: the card, content_text (large: lists only need the preview), then whether it expired.
_LIST_COLUMNS = "card, NULL"
_ALL_COLUMNS = "card, content_text"
_MERGE_CARD = "card = json_merge_patch(card, ?)"


def _value(column: str, value: Any) -> Any:
    """A column value as a parameter: metadata as its JSON text."""
    return json.dumps(value) if column == "metadata" else value


class DuckDBArtifacts:
    """SQL over `artifacts`. Not thread-safe on its own: the store serializes access with its lock."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        # Column types, for the typed list parameters of set-based updates (`update_many`).
        self._types = dict(con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'artifacts'"
        ).fetchall())
        self._timestamps = tuple(c for c in CARD_COLUMNS if self._types[c] == "TIMESTAMP")

    # --- rows and cards -------------------------------------------------------------------------

    def _row(self, values: Sequence[Any]) -> ArtifactRow:
        """A row from (card, content_text, is_expired)."""
        card = json.loads(values[0])
        for c in self._timestamps:
            if card.get(c) is not None:
                card[c] = datetime.fromisoformat(card[c])
        meta = card.get("metadata")
        card["metadata"] = json.loads(meta) if meta else {}
        card["content_text"] = values[1]
        row = ArtifactRow(*map(card.get, COLUMNS))  # positional: a missing key (a null merged in) reads as None
        row.is_expired = bool(values[2])
        return row

    @staticmethod
    def _card(fields: Mapping[str, Any]) -> str:
        """Card JSON of these columns (a whole card, or the patch an update merges). `metadata` is kept as its JSON
        text, so a patch replaces it instead of merging into it."""
        return json.dumps({
            c: v.isoformat(sep=" ") if isinstance(v, datetime) else _value(c, v)
            for c, v in fields.items() if c != "content_text"
        })

    def insert(self, row: ArtifactRow) -> None:
        # NULL columns are left out (no column has another default): DuckDB's cost grows with every bound
        # parameter, and a new artifact has ~18 NULLs.
        columns = [c for c in COLUMNS if getattr(row, c) is not None]
        values = [_value(c, getattr(row, c)) for c in columns]
        card = self._card({c: getattr(row, c) for c in CARD_COLUMNS})
        try:
            self.con.execute(
                f"INSERT INTO artifacts ({', '.join(columns)}, card) VALUES ({', '.join('?' for _ in columns)}, ?)",
                [*values, card],
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
        values = [_value(c, v) for c, v in changes.items()]
        self.con.execute(f"UPDATE artifacts SET {assignments}, {_MERGE_CARD} WHERE artifact_id = ?",
                         [*values, self._card(changes), artifact_id])

    def update_many(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        """`update` for many rows: one statement per set of changed columns (a statement costs more than a row)."""
        groups: dict[tuple[str, ...], list[str]] = {}
        for artifact_id, fields in changes.items():
            groups.setdefault(tuple(fields), []).append(artifact_id)
        for columns, ids in groups.items():
            if len(ids) == 1:
                self.update(ids[0], changes[ids[0]])
                continue
            unknown = set(columns) - set(COLUMNS)
            if unknown:
                raise KeyError(f"unknown columns {sorted(unknown)}")
            values = [[_value(c, changes[i][c]) for i in ids] for c in columns]
            # One typed list per column, unnested side by side and joined on the primary key.
            picked = ", ".join(f"unnest(?::{self._types[c]}[]) AS {c}" for c in columns)
            assignments = ", ".join(f"{c} = u.{c}" for c in columns)
            self.con.execute(
                f"UPDATE artifacts SET {assignments}, card = json_merge_patch(artifacts.card, u.patch) "
                f"FROM (SELECT unnest(?::VARCHAR[]) AS id, unnest(?::VARCHAR[]) AS patch, {picked}) u "
                "WHERE artifacts.artifact_id = u.id", [ids, [self._card(changes[i]) for i in ids], *values],
            )

    def get(self, artifact_id: str, now: datetime) -> ArtifactRow | None:
        row = self.con.execute(
            f"SELECT {_ALL_COLUMNS}, {_EXPIRED_SQL} FROM artifacts WHERE artifact_id = ?", [now, artifact_id]
        ).fetchone()
        return self._row(row) if row else None

    def get_many(self, artifact_ids: Sequence[str], now: datetime, *,
                 with_content: bool = False) -> dict[str, ArtifactRow]:
        """Rows by id, without content_text unless `with_content` (search results need metadata only)."""
        if not artifact_ids:
            return {}
        # One placeholder per id: an IN list of parameters uses the primary-key index; list_contains would scan.
        marks = ", ".join("?" for _ in artifact_ids)
        rows = self.con.execute(
            f"SELECT {_ALL_COLUMNS if with_content else _LIST_COLUMNS}, {_EXPIRED_SQL} FROM artifacts "
            f"WHERE artifact_id IN ({marks})",
            [now, *artifact_ids],
        ).fetchall()
        out = [self._row(r) for r in rows]
        return {r.artifact_id: r for r in out}

    def fields_of(self, artifact_ids: Sequence[str], columns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """These columns of these rows, by id (a search hit's card needs 24 of the 45). Read from the card, as
        every read here is: DuckDB's cost is per column read, and 10 hits' 24 columns took 3.3 ms."""
        unknown = set(columns) - set(COLUMNS)
        if unknown:
            raise KeyError(f"unknown columns {sorted(unknown)}")
        if not artifact_ids:
            return {}
        cols = ["artifact_id", *(c for c in columns if c != "artifact_id")]
        marks = ", ".join("?" for _ in artifact_ids)
        read = _ALL_COLUMNS if "content_text" in cols else _LIST_COLUMNS
        rows = self.con.execute(
            f"SELECT {read}, false FROM artifacts WHERE artifact_id IN ({marks})", list(artifact_ids)
        ).fetchall()
        found = (self._row(r) for r in rows)
        return {row.artifact_id: {c: getattr(row, c) for c in cols} for row in found}

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

    def lock(self, artifact_ids: Sequence[str]) -> None:
        """Nothing to do: one process owns the file and its store lock already serializes every writer."""

    # --- listing --------------------------------------------------------------------------------

    @staticmethod
    def _filters(scope: Scope, query: ListQuery, now: datetime) -> tuple[list[str], list[Any]]:
        return sqlfilters.list_filters(scope, query, now, sqlfilters.DUCKDB)

    def list(
        self, scope: Scope, query: ListQuery, after: Position | None, now: datetime
    ) -> tuple[list[ArtifactRow], int]:
        """One page (newest first, or oldest first with `query.order`) after `after`, plus the total matching the
        filters.

        Two steps, because DuckDB's cost is per column: the top-N sort reads only the filter and sort columns
        and returns row ids, then the page's rows are fetched whole by row id (sorting the full rows instead
        costs ~25 ms at 100k). The sort is also narrowed: rows are appended in created_at order, so the page
        is first looked for in a time window just past its start (below it newest first, above it oldest
        first), sized from the filters' average density for ~4 pages, and DuckDB's zone maps skip the rest of
        the table. If the window holds fewer rows than the page needs, it is widened, then dropped. Any window
        gives exact results: every row inside it sorts before every row outside it."""
        where, params = self._filters(scope, query, now)
        total, oldest, newest = self.con.execute(
            f"SELECT count(*), min(created_at), max(created_at) FROM artifacts WHERE {' AND '.join(where)}", params
        ).fetchone()
        if not total:
            return [], 0
        page_where, page_params = list(where), list(params)
        asc = query.order == "oldest"
        # The window grows away from the page's start: down from the newest (newest first) or up from the oldest.
        start, end = (oldest, newest) if asc else (newest, oldest)
        if after is not None:
            created = from_us(after.created_at_us)
            # `created_at <= ?` (>= oldest first) on its own lets zone maps skip everything before the cursor.
            if asc:
                page_where.append("created_at >= ? AND (created_at > ? OR artifact_id > ?)")
                start = max(start, created)
            else:
                page_where.append("created_at <= ? AND (created_at < ? OR artifact_id < ?)")
                start = min(start, created)
            page_params += [created, created, after.artifact_id]
        want = query.limit + 1
        width = (newest - oldest) * (4 * want / total)
        direction = "ASC" if asc else "DESC"
        for factor in (1, 16, None):
            bound = None
            if factor is not None:
                bound = start + width * factor if asc else start - width * factor
                if (bound >= end) if asc else (bound <= end):
                    bound = None
            window = [] if bound is None else ["created_at <= ?" if asc else "created_at >= ?"]
            row_ids = [r[0] for r in self.con.execute(
                f"SELECT rowid FROM artifacts WHERE {' AND '.join(page_where + window)} "
                f"ORDER BY created_at {direction}, artifact_id {direction} LIMIT ?",
                [*page_params, *([] if bound is None else [bound]), want],
            ).fetchall()]
            if bound is None or len(row_ids) >= want:
                break
        if not row_ids:
            return [], int(total)
        # No write can come between the two statements: the caller holds the store lock, and this process is
        # the only writer.
        # A semi-join, not `list_contains(?, rowid)`: DuckDB turns that into a filter it can push down only while the
        # ids are contiguous; with gaps (any filtered or interleaved page) it read the card of every row in the row
        # group. Fetching 51 such rows at 100k artifacts: 46-57 ms that way, 1.5-2.2 ms this way.
        fetched = self.con.execute(
            f"SELECT rowid, {_LIST_COLUMNS}, {_EXPIRED_SQL} FROM artifacts "
            "WHERE rowid IN (SELECT unnest(?::BIGINT[]))",
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

    def threads(self, scope: Scope, now: datetime, limit: int) -> list[ThreadSummary]:
        rows = self.con.execute(
            "SELECT thread_id, count(*), min(created_at), max(created_at) FROM artifacts WHERE org_id = ? "
            f"AND workspace_id = ? AND namespace_id = ? AND thread_id IS NOT NULL AND is_latest AND NOT {_EXPIRED_SQL} "
            "GROUP BY thread_id ORDER BY max(created_at) DESC, thread_id LIMIT ?",
            [scope.org_id, scope.workspace_id, scope.namespace_id, now, limit],
        ).fetchall()
        return [ThreadSummary(thread_id=r[0], artifacts=r[1], first_at=r[2], last_at=r[3]) for r in rows]

    def latest_refs(self) -> list[ArtifactRef]:
        rows = self.con.execute(
            "SELECT artifact_id, org_id, workspace_id, namespace_id FROM artifacts WHERE is_latest"
        ).fetchall()
        return [ArtifactRef(*r) for r in rows]

    def reset_index_of_latest(self) -> None:
        reset = {"is_indexed": False, "chunk_count": 0, "index_collection": None, "embedding_model_id": None}
        self.con.execute(
            "UPDATE artifacts SET is_indexed = false, chunk_count = 0, index_collection = NULL, "
            f"embedding_model_id = NULL, {_MERGE_CARD} WHERE is_latest", [self._card(reset)]
        )

    # --- figures ----------------------------------------------------------------------------------

    def tally(self, scope: Scope, now: datetime) -> ArtifactTally:
        tenant = "org_id = ? AND workspace_id = ? AND namespace_id = ?"
        params = [scope.org_id, scope.workspace_id, scope.namespace_id]
        groups = self.con.execute(
            f"SELECT artifact_type, status, count(*) FROM artifacts WHERE {tenant} AND is_latest "
            f"AND NOT {_EXPIRED_SQL} GROUP BY ALL", [*params, now]
        ).fetchall()
        by_type: dict[str, int] = {}
        by_status: dict[str, int] = {}
        for artifact_type, status, n in groups:
            by_type[artifact_type] = by_type.get(artifact_type, 0) + int(n)
            by_status[status] = by_status.get(status, 0) + int(n)
        versions, content_bytes = self.con.execute(
            f"SELECT count(*), coalesce(sum(size_bytes), 0) FROM artifacts WHERE {tenant}", params
        ).fetchone()
        # A blob's size is its version's size_bytes; identical bytes share one key, so count each key once.
        blobs, blob_bytes = self.con.execute(
            "SELECT count(*), coalesce(sum(size), 0) FROM (SELECT blob_key, any_value(size_bytes) AS size "
            f"FROM artifacts WHERE {tenant} AND blob_key IS NOT NULL GROUP BY blob_key)", params
        ).fetchone()
        return ArtifactTally(by_type=by_type, by_status=by_status, versions=int(versions),
                             content_bytes=int(content_bytes), blobs=int(blobs), blob_bytes=int(blob_bytes))

    # --- import, export, restore ------------------------------------------------------------------

    def archive_ids(self, scope: Scope) -> list[str]:
        """Every version's id in the scope, oldest first (an export's snapshot)."""
        rows = self.con.execute(
            "SELECT artifact_id FROM artifacts WHERE org_id = ? AND workspace_id = ? AND namespace_id = ? "
            "ORDER BY created_at, artifact_id", [scope.org_id, scope.workspace_id, scope.namespace_id]
        ).fetchall()
        return [r[0] for r in rows]

    def latest_by_metadata(self, scope: Scope, key: str, values: Sequence[str],
                           thread_id: str | None) -> dict[str, ArtifactRow]:
        """The latest versions in the scope (and thread) whose metadata `key` is one of `values`, by that value."""
        if not values:
            return {}
        rows = self.con.execute(
            f"SELECT {_LIST_COLUMNS}, false, json_extract_string(metadata, ?) AS v FROM artifacts "
            "WHERE org_id = ? AND workspace_id = ? AND namespace_id = ? AND is_latest "
            "AND thread_id IS NOT DISTINCT FROM ? AND list_contains(?, json_extract_string(metadata, ?)) "
            "ORDER BY created_at",
            [f"$.{key}", scope.org_id, scope.workspace_id, scope.namespace_id, thread_id, list(values), f"$.{key}"],
        ).fetchall()
        return {r[3]: self._row(r[:3]) for r in rows}
