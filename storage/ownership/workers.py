"""The owner's background work: the index and generation job runners, and the housekeeping loop.

They run in the owning process's task group only; the slow parts go to worker threads, and index preparation
(chunking, terms, embedding: Python loops that would hold the GIL) to a child process (`index/child.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import anyio.abc

from artifact_mcp.storage.clock import utcnow
from artifact_mcp.storage.config import StoreConfig
from artifact_mcp.storage.index.child import ChildPreparer
from artifact_mcp.storage.models import ChangeEvent
from artifact_mcp.storage.store import ArtifactStore

log = logging.getLogger(__name__)
# A batch of index jobs (config.job_batch, embedded together) is committed this many artifacts at a time: each
# commit holds the store lock, and writers wait for it, about as long as a 16-artifact batch always did.
COMMIT_SLICE = 16
MODEL_POLL_SECONDS = 5.0  # how often queued index jobs look for the weights of a model not yet prepared

Emit = Callable[[ChangeEvent], Awaitable[None]]


# How often a replica polls a shared catalog's change feed when no notification wakes it.
FOLLOW_POLL_SECONDS = 0.5


class JobRunner:
    """Works through due jobs until cancelled. `work` processes one claimed batch (in a worker thread);
    `wake()` is called after writes that enqueue jobs, so they start at once instead of at the next poll."""

    def __init__(self, work: Callable[[], Awaitable[float | None]], *, poll_seconds: float = 1.0) -> None:
        self._work = work
        self._poll = poll_seconds
        self._wake = anyio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake = anyio.Event()
            try:
                wait = await self._work()
            except Exception:
                log.exception("index job batch failed unexpectedly; will retry")
                wait = self._poll
            if wait == 0:
                continue  # more work is due now
            with anyio.move_on_after(self._poll if wait is None else min(wait, self._poll)):
                await self._wake.wait()


class OwnerWorkers:
    def __init__(self, store: ArtifactStore, cfg: StoreConfig, emit: Emit, *, deliver: Emit | None = None) -> None:
        self.store = store
        self.cfg = cfg
        self._emit = emit
        self._deliver = deliver or emit  # for changes other replicas made: to our listeners, not back out
        self.indexer = JobRunner(self._index_batch)
        self.generator = JobRunner(self._generate_batch)
        self.preparer = ChildPreparer(store.indexer.config)

    def start(self, tg: anyio.abc.TaskGroup) -> None:
        tg.start_soon(self._housekeeping)
        if self.store.job_lease_seconds is not None:
            tg.start_soon(self._heartbeat, self.store.job_lease_seconds / 3)
        if self.store.following is not None:
            tg.start_soon(self._follow)
        tg.start_soon(self._run_indexer)
        tg.start_soon(self.generator.run)
        tg.start_soon(self._warm_up)

    async def _warm_up(self) -> None:
        """The model in this process serves query embeddings; the child loads its own for index jobs. One after the
        other: started together on two cores, both loads slowed the first query (2.4 s from spawn measured)."""
        await anyio.to_thread.run_sync(self.store.warm_up, abandon_on_cancel=True)
        await anyio.to_thread.run_sync(self.preparer.start, abandon_on_cancel=True)

    async def _run_indexer(self) -> None:
        try:
            await self.indexer.run()
        finally:
            self.preparer.close()  # a batch in progress is abandoned with it

    async def _generate_batch(self) -> float | None:
        """Run due generation jobs (one at a time: rendering is CPU-bound); how long until the next is due."""
        store = self.store
        tasks = await anyio.to_thread.run_sync(store.claim_generation_jobs, 1)
        if not tasks:
            due = await anyio.to_thread.run_sync(store.next_generation_due)
            if due is None:
                return None
            return max(0.01, (due - utcnow()).total_seconds())
        for task in tasks:
            # Abandoned on shutdown like index work: the job stays `running` and the next owner requeues it.
            outcome = await anyio.to_thread.run_sync(store.run_generation, task, abandon_on_cancel=True)
            for event in await anyio.to_thread.run_sync(store.commit_generation, task, outcome):
                await self._emit(event)
        self.indexer.wake()  # a completed document has an index job now
        return 0

    async def _index_batch(self) -> float | None:
        """Claim, prepare and commit one batch of index jobs; how long until the next is due (None: none queued)."""
        store = self.store
        if not store.indexer.model_available():
            # Unprepared (`artifact-mcp model prepare` not run yet): the jobs stay queued, attempts unspent, and
            # run once the weights appear, without a restart.
            return MODEL_POLL_SECONDS
        tasks = await anyio.to_thread.run_sync(store.claim_index_jobs, self.cfg.index.job_batch)
        if not tasks:
            due = await anyio.to_thread.run_sync(store.next_job_due)
            if due is None:
                return None
            return max(0.01, (due - utcnow()).total_seconds())
        # Pure computation (extraction, chunking, embedding): abandoned, not awaited, on shutdown. The jobs stay
        # `running` in the catalog and the next owner requeues them.
        prepared = await anyio.to_thread.run_sync(partial(store.indexing.prepare_index, tasks, run=self.preparer),
                                                  abandon_on_cancel=True)
        for start in range(0, len(tasks), COMMIT_SLICE):
            part = slice(start, start + COMMIT_SLICE)
            try:
                events = await anyio.to_thread.run_sync(store.commit_index, tasks[part], prepared[part])
            except Exception as exc:
                # Else the jobs stay `running` (and a shared catalog's heartbeat keeps renewing their lease).
                # Those of the slices committed before are done, not running, and abandoning leaves them be.
                await anyio.to_thread.run_sync(store.abandon_index, tasks, f"committing the index failed: {exc}")
                raise
            for event in events:
                await self._emit(event)
        return 0

    async def _follow(self) -> None:
        """Keep the search cache current with other replicas' chunk writes: woken by their notifications, and
        polling every FOLLOW_POLL_SECONDS when none come (a notification lost with a dropped connection)."""
        store = self.store
        while True:
            try:
                await anyio.to_thread.run_sync(store.wait_for_changes, FOLLOW_POLL_SECONDS, abandon_on_cancel=True)
                await anyio.to_thread.run_sync(store.follow_changes)
                for event in store.foreign_events():
                    await self._deliver(event)
            except Exception:
                log.exception("following the catalog's changes failed; will retry")
                await anyio.sleep(FOLLOW_POLL_SECONDS)

    async def _heartbeat(self, every: float) -> None:
        """Keep this process's job claims (a shared catalog's leases) and take over lapsed ones."""
        while True:
            await anyio.sleep(every)
            try:
                if await anyio.to_thread.run_sync(self.store.job_heartbeat):
                    self.indexer.wake()
                    self.generator.wake()
            except Exception:
                log.exception("renewing job leases failed; will retry")

    async def _housekeeping(self) -> None:
        store = self.store
        await anyio.to_thread.run_sync(store.collect_garbage)
        since_gc = 0.0
        while True:
            await anyio.sleep(self.cfg.sweep_interval_seconds)
            try:
                for event in await anyio.to_thread.run_sync(store.sweep_expired):
                    await self._emit(event)
                since_gc += self.cfg.sweep_interval_seconds
                if since_gc >= self.cfg.gc_interval_seconds:
                    since_gc = 0.0
                    await anyio.to_thread.run_sync(store.collect_garbage)
            except Exception:
                log.exception("housekeeping failed; will retry")
