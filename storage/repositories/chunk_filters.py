"""Which chunks a search may see, as data: conditions on the chunks table's copied columns, nested with and / or /
not. `sqlfilters.to_sql` turns them into the WHERE clause every chunk read applies before its top-k.

The store's own type, not LlamaIndex's `MetadataFilters`: the search path must not import LlamaIndex, ~1.0 s of
imports and ~52 MiB (bench/startup.py: they were most of the time from spawn to the first query answered). The
operators are LlamaIndex's `FilterOperator` values, so its filters convert one to one (`repositories/vector_store.py`,
the LlamaIndex vector store over the same table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal


class Op(StrEnum):
    EQ = "=="
    NE = "!="
    GT = ">"  # on expires_at only: "not expired at"
    IN = "in"
    NIN = "nin"
    ANY = "any"  # a list column holds at least one of the values
    ALL = "all"  # ... every one of them
    CONTAINS = "contains"  # ... this value
    IS_EMPTY = "is_empty"


@dataclass(frozen=True)
class ChunkFilter:
    key: str
    value: Any = None
    op: Op = Op.EQ

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "op", Op(self.op))
        except ValueError:
            raise ValueError(f"operator {self.op!r} is not supported on {self.key}") from None


@dataclass(frozen=True)
class ChunkFilters:
    filters: tuple[ChunkFilter | ChunkFilters, ...] = field(default_factory=tuple)
    condition: Literal["and", "or", "not"] = "and"

    def __post_init__(self) -> None:
        if self.condition not in ("and", "or", "not"):
            raise ValueError(f"condition {self.condition!r} is not one of and, or, not")
        object.__setattr__(self, "filters", tuple(self.filters))

    def cache_key(self) -> str:
        """The same text for equal filters (what a cache of their answers is keyed by)."""
        return repr(self)


def all_of(*filters: ChunkFilter | ChunkFilters) -> ChunkFilters:
    return ChunkFilters(tuple(filters), "and")


def any_of(*filters: ChunkFilter | ChunkFilters) -> ChunkFilters:
    return ChunkFilters(tuple(filters), "or")
