"""Numpy arrays into DuckDB without per-value conversion.

A list parameter (`?::BIGINT[]`) is converted value by value while holding the GIL: ~0.2 us per integer and ~1 ms
per 384-float vector, which every other thread of the process waits out. Registered as a view, the same arrays are
scanned in place.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import numpy as np

_ids = itertools.count()


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, arrays: dict[str, np.ndarray]) -> Iterator[str]:
    """1-D arrays of one length as a view's columns, by the view's name, for the block's time."""
    name = f"_arrays_{next(_ids)}"
    con.register(name, arrays)
    try:
        yield name
    finally:
        con.unregister(name)
