"""Timestamps as the catalog stores them: naive UTC, microsecond precision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    """Naive UTC with microsecond precision: what DuckDB TIMESTAMP stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def to_us(ts: datetime) -> int:
    return int(ts.replace(tzinfo=UTC).timestamp()) * 1_000_000 + ts.microsecond


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(microseconds=us)
