"""LlamaIndex `MetadataFilters` -> a PostgreSQL WHERE clause over the chunks table (parameterized, `%s`).

The same rules as the DuckDB backend's (repositories/duckdb/filters.py): only known columns, applied inside the
query before any top-k. Tags are a text[]: `@>` (all), `&&` (any), `= ANY` (contains).
"""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from artifact_mcp.storage.repositories.duckdb.filters import FILTERABLE

_LIST_COLUMNS = frozenset({"tags"})


def _one(f: MetadataFilter, alias: str) -> tuple[str, list[Any]]:
    if f.key not in FILTERABLE:
        raise ValueError(f"cannot filter chunks on {f.key!r}; filterable: {sorted(FILTERABLE)}")
    col = f"{alias}{f.key}"
    op, value = f.operator, f.value
    if f.key == "expires_at":
        if op != FilterOperator.GT or not isinstance(value, str):
            raise ValueError("expires_at only supports '>' with an ISO timestamp")
        return f"({col} IS NULL OR {col} > %s::timestamp)", [value]
    if f.key in _LIST_COLUMNS:
        if op == FilterOperator.ALL:
            return f"{col} @> %s::text[]", [list(value)]  # type: ignore[arg-type]
        if op == FilterOperator.ANY:
            return f"{col} && %s::text[]", [list(value)]  # type: ignore[arg-type]
        if op in (FilterOperator.CONTAINS, FilterOperator.EQ):
            return f"%s = ANY({col})", [value]
        raise ValueError(f"operator {op.value!r} is not supported on {f.key}")
    simple = {FilterOperator.EQ: "=", FilterOperator.NE: "<>"}
    if op in simple:
        return f"{col} {simple[op]} %s", [value]
    if op == FilterOperator.IN:
        return f"{col} = ANY(%s)", [list(value)]  # type: ignore[arg-type]
    if op == FilterOperator.NIN:
        return f"NOT ({col} = ANY(%s))", [list(value)]  # type: ignore[arg-type]
    if op == FilterOperator.IS_EMPTY:
        return f"{col} IS NULL", []
    raise ValueError(f"operator {op.value!r} is not supported on {f.key}")


def to_sql(filters: MetadataFilters | None, alias: str = "") -> tuple[str, list[Any]]:
    """(clause, params); "TRUE" for no filters. `alias` prefixes columns, e.g. "c."."""
    if filters is None or not filters.filters:
        return "TRUE", []
    parts: list[str] = []
    params: list[Any] = []
    for f in filters.filters:
        clause, p = to_sql(f, alias) if isinstance(f, MetadataFilters) else _one(f, alias)
        parts.append(f"({clause})")
        params += p
    cond = filters.condition or FilterCondition.AND
    if cond == FilterCondition.NOT:
        return f"NOT ({' AND '.join(parts)})", params
    joiner = " OR " if cond == FilterCondition.OR else " AND "
    return joiner.join(parts), params
