"""LlamaIndex `MetadataFilters` -> a SQL WHERE clause over the chunks table (parameterized).

Only known columns can be filtered on: a filter key is never interpolated into SQL unless it is in
`FILTERABLE`. Every search applies these *inside* the query, before its top-k, never after it.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

FILTERABLE = frozenset({
    "artifact_id", "root_artifact_id", "org_id", "workspace_id", "namespace_id", "thread_id",
    "artifact_type", "tags", "collection", "expires_at",
})
_LIST_COLUMNS = frozenset({"tags"})


def _one(f: MetadataFilter, alias: str) -> tuple[str, list[Any]]:
    if f.key not in FILTERABLE:
        raise ValueError(f"cannot filter chunks on {f.key!r}; filterable: {sorted(FILTERABLE)}")
    col = f"{alias}{f.key}"
    op, value = f.operator, f.value
    if f.key == "expires_at":
        # "Not expired at <value>": NULL means never expires (no TTL, or pinned).
        if op != FilterOperator.GT or not isinstance(value, str):
            raise ValueError("expires_at only supports '>' with an ISO timestamp")
        return f"({col} IS NULL OR {col} > CAST(? AS TIMESTAMP))", [value]
    if f.key in _LIST_COLUMNS:
        if op == FilterOperator.ALL:
            return f"list_has_all({col}, ?)", [list(value)]  # type: ignore[arg-type]
        if op == FilterOperator.ANY:
            return f"list_has_any({col}, ?)", [list(value)]  # type: ignore[arg-type]
        if op in (FilterOperator.CONTAINS, FilterOperator.EQ):
            return f"list_contains({col}, ?)", [value]
        raise ValueError(f"operator {op.value!r} is not supported on {f.key}")
    simple = {FilterOperator.EQ: "=", FilterOperator.NE: "<>"}
    if op in simple:
        return f"{col} {simple[op]} ?", [value]
    if op == FilterOperator.IN:
        return f"list_contains(?, {col})", [list(value)]  # type: ignore[arg-type]
    if op == FilterOperator.NIN:
        return f"NOT list_contains(?, {col})", [list(value)]  # type: ignore[arg-type]
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
