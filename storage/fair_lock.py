"""The store's lock: reentrant and first come, first served.

Every catalog read and write of a store runs under one lock (the DuckDB connection is not shared between
threads). Under load, dozens of worker threads wait on it at once, and `threading.RLock` hands it to whichever
thread the OS wakes first, or back to the thread that just released it: a request could be passed over many
times in a row while later ones went first, which made the latency tail long. This lock serves its waiters in
the order they came.
"""

from __future__ import annotations

import threading
from collections import deque
from types import TracebackType

_HANDOFF = -1  # owner while the lock passes to the next waiter: a thread arriving meanwhile queues behind it


class FairRLock:
    """A reentrant lock that serves its waiters in arrival order (a context manager, like `threading.RLock`)."""

    __slots__ = ("_depth", "_mutex", "_owner", "_waiters")

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiters: deque[threading.Lock] = deque()

    def acquire(self) -> bool:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is None:
                self._owner, self._depth = me, 1
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        try:
            turn.acquire()  # released by the thread that hands the lock over
        except BaseException:  # e.g. KeyboardInterrupt in the main thread: leave the queue, or pass the lock on
            with self._mutex:
                if turn in self._waiters:
                    self._waiters.remove(turn)
                else:
                    self._hand_over()
            raise
        with self._mutex:
            self._owner, self._depth = me, 1
        return True

    def release(self) -> None:
        with self._mutex:
            if self._owner != threading.get_ident():
                raise RuntimeError("cannot release a lock this thread does not hold")
            self._depth -= 1
            if not self._depth:
                self._hand_over()

    def _hand_over(self) -> None:
        """To the longest waiting thread, or free (the caller holds `_mutex`)."""
        if self._waiters:
            self._owner = _HANDOFF
            self._waiters.popleft().release()
        else:
            self._owner = None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
