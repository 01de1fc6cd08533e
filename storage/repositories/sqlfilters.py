"""WHERE clauses for either backend: `ChunkFilters` (chunk_filters.py) over the chunks table, and a `ListQuery` over
the artifacts table (parameterized).

Only known columns can be filtered on: a filter key is never interpolated into SQL unless it is in `FILTERABLE`.
Every search applies these *inside* the query, before its top-k, never after it. The backends differ only in
their placeholder and list operators (`Dialect`): DuckDB's lists, PostgreSQL's arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from artifact_mcp.storage.models import ListQuery, Scope
from artifact_mcp.storage.repositories.chunk_filters import ChunkFilter, ChunkFilters, Op

FILTERABLE = frozenset({
    "artifact_id", "root_artifact_id", "org_id", "workspace_id", "namespace_id", "thread_id",
    "artifact_type", "tags", "collection", "expires_at",
})
_LIST_COLUMNS = frozenset({"tags"})


@dataclass(frozen=True)
class Dialect:
    """Templates with `{col}` and `{p}` (the placeholder)."""

    p: str
    has_all: str      # a list column holds every given value
    has_any: str      # ... at least one of them
    contains: str     # ... this one value
    in_list: str      # a scalar column is one of the given values
    timestamp: str    # the parameter as a timestamp


DUCKDB = Dialect(p="?", has_all="list_has_all({col}, {p})", has_any="list_has_any({col}, {p})",
                 contains="list_contains({col}, {p})", in_list="list_contains({p}, {col})",
                 timestamp="CAST({p} AS TIMESTAMP)")
POSTGRES = Dialect(p="%s", has_all="{col} @> {p}::text[]", has_any="{col} && {p}::text[]",
                   contains="{p} = ANY({col})", in_list="{col} = ANY({p})", timestamp="{p}::timestamp")


def _one(f: ChunkFilter, alias: str, d: Dialect) -> tuple[str, list[Any]]:
    if f.key not in FILTERABLE:
        raise ValueError(f"cannot filter chunks on {f.key!r}; filterable: {sorted(FILTERABLE)}")
    col = f"{alias}{f.key}"
    op, value = f.op, f.value
    if f.key == "expires_at":
        # "Not expired at <value>": NULL means never expires (no TTL, or pinned).
        if op != Op.GT or not isinstance(value, str):
            raise ValueError("expires_at only supports '>' with an ISO timestamp")
        return f"({col} IS NULL OR {col} > {d.timestamp.format(p=d.p)})", [value]
    if f.key in _LIST_COLUMNS:
        if op == Op.ALL:
            return d.has_all.format(col=col, p=d.p), [list(value)]  # type: ignore[arg-type]
        if op == Op.ANY:
            return d.has_any.format(col=col, p=d.p), [list(value)]  # type: ignore[arg-type]
        if op in (Op.CONTAINS, Op.EQ):
            return d.contains.format(col=col, p=d.p), [value]
        raise ValueError(f"operator {op.value!r} is not supported on {f.key}")
    simple = {Op.EQ: "=", Op.NE: "<>"}
    if op in simple:
        return f"{col} {simple[op]} {d.p}", [value]
    if op == Op.IN:
        return d.in_list.format(col=col, p=d.p), [list(value)]  # type: ignore[arg-type]
    if op == Op.NIN:
        return f"NOT ({d.in_list.format(col=col, p=d.p)})", [list(value)]  # type: ignore[arg-type]
    if op == Op.IS_EMPTY:
        return f"{col} IS NULL", []
    raise ValueError(f"operator {op.value!r} is not supported on {f.key}")


def to_sql(filters: ChunkFilters | None, alias: str = "", dialect: Dialect = DUCKDB) -> tuple[str, list[Any]]:
    """(clause, params); "TRUE" for no filters. `alias` prefixes columns, e.g. "c."."""
    if filters is None or not filters.filters:
        return "TRUE", []
    parts: list[str] = []
    params: list[Any] = []
    for f in filters.filters:
        clause, p = to_sql(f, alias, dialect) if isinstance(f, ChunkFilters) else _one(f, alias, dialect)
        parts.append(f"({clause})")
        params += p
    if filters.condition == "not":
        return f"NOT ({' AND '.join(parts)})", params
    joiner = " OR " if filters.condition == "or" else " AND "
    return joiner.join(parts), params


def expired_sql(d: Dialect) -> str:
    """True for a version expired at the parameter (a pinned one never is)."""
    return f"(expires_at IS NOT NULL AND NOT is_pinned AND expires_at <= {d.p})"


def list_filters(scope: Scope, query: ListQuery, now: datetime, d: Dialect) -> tuple[list[str], list[Any]]:
    """(conditions, params) of an artifact listing: the scope and the query's filters, each condition one item."""
    where = [f"org_id = {d.p}", f"workspace_id = {d.p}", f"namespace_id = {d.p}"]
    params: list[Any] = [scope.org_id, scope.workspace_id, scope.namespace_id]
    if query.latest_only:
        where.append("is_latest")
    if not query.include_expired:
        where.append(f"NOT {expired_sql(d)}")
        params.append(now)
    for column, value in (("thread_id", query.thread_id), ("status", query.status),
                          ("created_by", query.created_by)):
        if value is not None:
            where.append(f"{column} = {d.p}")
            params.append(value)
    if query.artifact_types:
        where.append(d.in_list.format(col="artifact_type", p=d.p))
        params.append(list(query.artifact_types))
    if query.tags:
        where.append(d.has_all.format(col="tags", p=d.p))
        params.append(list(query.tags))
    if query.promoted_only:
        where.append("promoted_to_source_id IS NOT NULL")
    return where, params

