"""The store's lock (storage/fair_lock.py): reentrant, exclusive, and served in arrival order."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from artifact_mcp.storage.fair_lock import FairRLock


def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.001)


def _start_taker(lock: FairRLock) -> tuple[threading.Thread, threading.Event]:
    """A thread that takes the lock (and lets it go), and the event it sets once it has it."""
    got = threading.Event()

    def take() -> None:
        with lock:
            got.set()

    t = threading.Thread(target=take, daemon=True)
    t.start()
    return t, got


def _try_in_thread(lock: FairRLock, timeout: float = 2.0) -> bool:
    """Whether another thread gets the lock within `timeout`."""
    return _start_taker(lock)[1].wait(timeout)


def _run_threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


@contextmanager
def _held_by_another_thread(lock: FairRLock) -> Iterator[None]:
    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            held.set()
            done.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(5)
    try:
        yield
    finally:
        done.set()
        holder.join(5)


def test_waiters_get_the_lock_in_the_order_they_came() -> None:
    lock = FairRLock()
    order: list[int] = []
    threads = []
    with lock:
        for i in range(12):
            def take(i: int = i) -> None:
                with lock:
                    order.append(i)
            t = threading.Thread(target=take)
            t.start()
            threads.append(t)
            _wait_for(lambda i=i: len(lock._waiters) == i + 1)  # queued before the next one starts
    for t in threads:
        t.join(5)
    assert order == list(range(12))


def test_reentrant_and_exclusive() -> None:
    lock = FairRLock()
    with lock, lock:
        assert not _try_in_thread(lock, 0.2)
    assert _try_in_thread(lock)

    counter = [0]

    def bump() -> None:
        for _ in range(2000):
            with lock:
                with lock:  # nested, as store methods that call each other do
                    value = counter[0]
                counter[0] = value + 1

    _run_threads(bump, 8)
    assert counter[0] == 16_000
    assert _try_in_thread(lock)


def test_release_by_a_thread_that_does_not_hold_it_is_refused() -> None:
    lock = FairRLock()
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release()
    with _held_by_another_thread(lock), pytest.raises(RuntimeError, match="does not hold"):
        lock.release()
    assert _try_in_thread(lock)


def test_a_waiter_interrupted_leaves_the_queue_and_the_lock_usable() -> None:
    """Ctrl-C while the main thread waits (a CLI command on a busy store) must not leave a dead waiter that the
    lock would be handed to forever."""
    lock = FairRLock()
    main = threading.main_thread().ident
    assert main == threading.get_ident()

    def interrupt() -> None:
        _wait_for(lambda: len(lock._waiters) == 1)
        signal.pthread_kill(main, signal.SIGINT)

    with _held_by_another_thread(lock):
        threading.Thread(target=interrupt, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            lock.acquire()
        assert not lock._waiters
    assert _try_in_thread(lock)


def test_never_two_holders_at_once_even_while_it_is_handed_over() -> None:
    """Threads that yield while holding it: a lock that were free during a hand-over would let a newcomer in."""
    lock = FairRLock()
    inside = [0]
    overlaps = [0]

    def work() -> None:
        for _ in range(300):
            with lock:
                inside[0] += 1
                if inside[0] > 1:
                    overlaps[0] += 1
                time.sleep(0)
                inside[0] -= 1

    _run_threads(work, 8)
    assert overlaps[0] == 0


def test_a_waiter_interrupted_once_handed_the_lock_passes_it_on() -> None:
    """The other interrupted case: the lock was handed to the waiter (its turn released) before it could take it.
    It must go to the next waiter, not stay with the one that left."""
    lock = FairRLock()
    me = threading.get_ident()
    turn = threading.Lock()
    turn.acquire()
    lock._owner = turn  # handed over by the previous holder, not yet taken
    waiter, got = _start_taker(lock)
    _wait_for(lambda: len(lock._waiters) == 1)
    lock._abandon(turn, me)
    assert got.wait(5)
    waiter.join(5)
    assert lock._owner is None and not lock._waiters
    lock._owner, lock._depth = me, 1  # taken, then interrupted before acquire returned: freed the same way
    lock._abandon(turn, me)
    assert lock._owner is None and _try_in_thread(lock)
