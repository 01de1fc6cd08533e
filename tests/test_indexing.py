"""Index jobs beside writes: a create does not wait behind indexing; the runner's batched claim and commit keep
every job's outcome; preparation in a child process survives the child dying.

The first test drives the MCP session (the owner's job runner and its child process at work); the others call the
runner's steps on an ArtifactStore that has no runner, so nothing races them.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import numpy as np
import pytest
from mcp import Client
from mcp.server import MCPServer

from artifact_mcp.server.runtime import Runtime
from artifact_mcp.storage.clock import utcnow
from artifact_mcp.storage.config import IndexConfig, StoreConfig
from artifact_mcp.storage.index.child import ChildPreparer
from artifact_mcp.storage.index.pipeline import PrepareInput
from artifact_mcp.storage.models import NewArtifact, Scope
from artifact_mcp.storage.store import ArtifactStore, open_store
from tests.conftest import TEST_EMBEDDING, call, indexed

pytestmark = pytest.mark.anyio

SCOPE = Scope(org_id="default", workspace_id="default", namespace_id="default")


@pytest.fixture
def era() -> str:
    return "auto"


def prose(n_sentences: int, seed: int = 0) -> str:
    return " ".join(f"Sentence {i} of text {seed} talks about topic{(i * 7 + seed) % 997} at length."
                    for i in range(n_sentences))


async def test_create_while_a_large_index_job_runs(client: Client, app_runtime: tuple[MCPServer, Runtime]) -> None:
    """Creates issued while a large document is being indexed complete at once (they wait neither for its
    chunking nor for its embedding), and the large job still completes."""
    big = await call(client, "create_artifact", {"name": "big", "content": prose(12_000)})  # ~0.9 MB
    with anyio.fail_after(60):
        while (await call(client, "get_artifact", {"artifact_id": big["artifact_id"], "max_chars": 0}))[
                "status"] == "pending":
            await anyio.sleep(0.02)
    small, took = [], []
    for i in range(5):
        t0 = time.perf_counter()
        small.append(await call(client, "create_artifact", {"name": f"small {i}", "content": prose(5, seed=i)}))
        took.append(time.perf_counter() - t0)
    state = await call(client, "get_artifact", {"artifact_id": big["artifact_id"], "max_chars": 0})
    assert state["status"] == "processing", "the large job ended before the creates: it proves nothing"
    assert not state["is_indexed"]
    assert max(took) < 5, took  # a create waiting for the whole job would take its seconds
    with anyio.fail_after(120):
        done = await indexed(client, big["artifact_id"])
        for art in small:
            await indexed(client, art["artifact_id"])
    assert done["status"] == "ready" and done["chunk_count"] > 100
    jobs = await call(client, "list_artifact_jobs", {"artifact_id": big["artifact_id"]})
    assert [j["status"] for j in jobs["jobs"]] == ["succeeded"]


@pytest.fixture
def bare_store(tmp_path: Path) -> Iterator[ArtifactStore]:
    """A store with no job runner: the test runs the runner's steps itself."""
    store = open_store(StoreConfig(catalog_path=str(tmp_path / "catalog.duckdb"), blob_url=str(tmp_path / "blobs"),
                                   index=IndexConfig(embedding_model=TEST_EMBEDDING)))
    yield store
    store.close()


def run_jobs(store: ArtifactStore, limit: int = 16) -> list[int]:
    """Claim, prepare and commit batches until none is due; the size of each batch."""
    sizes = []
    while tasks := store.claim_index_jobs(limit):
        sizes.append(len(tasks))
        store.commit_index(tasks, store.prepare_index(tasks))
    return sizes


def test_batch_commit_stores_every_chunk_with_its_own_vector(bare_store: ArtifactStore) -> None:
    """One statement writes a batch's chunks, vectors and postings: each chunk gets its own vector, in order."""
    store = bare_store
    arts = [store.create(SCOPE, NewArtifact(name=f"doc {i}", content=prose(40 + 30 * i, seed=i)))[0]
            for i in range(4)]
    with store._lock:
        store.cache.load(store.db.chunks, store.db.postings)  # so that it follows the commits below
    tasks = store.claim_index_jobs(16)
    assert len(tasks) == 4
    prepared = store.prepare_index(tasks)
    changes = store.db.chunks.changes
    store.commit_index(tasks, prepared)
    assert store.db.chunks.changes > changes  # what search's cached eligibility keys on
    with store._lock:
        for art, prep in zip(arts, prepared, strict=True):
            got = store.con.execute(
                "SELECT chunk_index, text, start_char, end_char, embedding FROM chunks WHERE artifact_id = ? "
                "ORDER BY chunk_index", [art.artifact_id]).fetchall()
            assert len(got) == len(prep.chunks) > 1
            for (index, text, start, end, vector), chunk, expected in zip(got, prep.chunks, prep.vectors,
                                                                            strict=True):
                assert (index, text, start, end) == (chunk.index, chunk.text, chunk.start, chunk.end)
                assert np.allclose(np.asarray(vector, dtype=np.float32), expected)
            postings = store.con.execute(
                "SELECT count(*), sum(tf) FROM postings JOIN chunks USING (seq) WHERE artifact_id = ?",
                [art.artifact_id]).fetchone()
            assert postings == (sum(len(c.terms) for c in prep.chunks), sum(sum(c.tfs) for c in prep.chunks))
            row = store.db.artifacts.get(art.artifact_id, utcnow())
            assert row is not None
            assert (row.status, row.is_indexed, row.chunk_count, row.index_attempts) == (
                "ready", True, len(prep.chunks), 1)
        assert store.cache.loaded and store.cache.rows == store.db.chunks.count()


def test_a_batch_takes_one_job_per_version(bare_store: ArtifactStore) -> None:
    """Two queued jobs of one version (an index, then a re-index after a rename) run in two batches, in order;
    both succeed and the version keeps one set of chunks."""
    store = bare_store
    art, _ = store.create(SCOPE, NewArtifact(name="twice", content=prose(60)))
    other, _ = store.create(SCOPE, NewArtifact(name="once", content=prose(30, seed=1)))
    with store._lock:
        row = store.db.artifacts.get(art.artifact_id, utcnow())
        assert row is not None
        store.db.jobs.enqueue(row, utcnow(), "reindex")
    assert run_jobs(store) == [2, 1]
    with store._lock:
        statuses = store.con.execute(
            "SELECT artifact_id, type, status FROM jobs ORDER BY created_at").fetchall()
        assert statuses == [(art.artifact_id, "index", "succeeded"), (other.artifact_id, "index", "succeeded"),
                            (art.artifact_id, "reindex", "succeeded")]
        row = store.db.artifacts.get(art.artifact_id, utcnow())
        assert row is not None and row.index_attempts == 2
        assert store.con.execute("SELECT count(*) FROM chunks WHERE artifact_id = ?",
                                 [art.artifact_id]).fetchone()[0] == row.chunk_count


def test_child_preparer_matches_in_process_and_survives_its_death(bare_store: ArtifactStore) -> None:
    store = bare_store
    art, _ = store.create(SCOPE, NewArtifact(name="doc", content=prose(50)))
    tasks = store.claim_index_jobs(16)
    preparer = ChildPreparer(store.indexer.config)
    try:
        here = store.prepare_index(tasks)
        there = store.indexing.prepare_index(tasks, run=preparer)
        assert [c.text for c in there[0].chunks] == [c.text for c in here[0].chunks]
        assert np.allclose(there[0].vectors, here[0].vectors)
        # Dead while idle: the next batch starts a new child.
        first = preparer._proc
        assert first is not None
        first.kill()
        first.wait()
        again = store.indexing.prepare_index(tasks, run=preparer)
        assert again[0].error is None and preparer._proc is not first
        # Dead mid-batch: that batch fails (its jobs are retried), the next one works.
        big = PrepareInput(row=dataclasses.replace(tasks[0].row, content_text=prose(30_000)))
        proc = preparer._proc
        assert proc is not None
        threading.Timer(0.3, proc.kill).start()
        with pytest.raises(RuntimeError, match="exited"):
            preparer([big])
        assert store.indexing.prepare_index(tasks, run=preparer)[0].error is None
        store.commit_index(tasks, there)
    finally:
        preparer.close()
    with store._lock:
        row = store.db.artifacts.get(art.artifact_id, utcnow())
        assert row is not None and row.is_indexed


def test_closing_the_child_preparer_ends_a_batch_in_progress(bare_store: ArtifactStore) -> None:
    """Shutdown closes the preparer while the runner's thread waits for a batch: both end at once."""
    store = bare_store
    store.create(SCOPE, NewArtifact(name="doc", content=prose(10)))
    (task,) = store.claim_index_jobs(16)
    preparer = ChildPreparer(store.indexer.config)
    preparer.start()
    errors: list[BaseException] = []

    def batch() -> None:
        try:
            preparer([PrepareInput(row=dataclasses.replace(task.row, content_text=prose(30_000)))])
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=batch)
    worker.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    preparer.close()
    worker.join(timeout=10)
    assert not worker.is_alive() and time.perf_counter() - t0 < 10
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    with pytest.raises(RuntimeError, match="closed"):
        preparer([])
