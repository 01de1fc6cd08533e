"""The search mirror's kept eligibility (SearchCache.eligible_cached): the same answers as the SQL filter at
every moment, across writes and expiry, with the SQL run again only when the chunks changed."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from artifact_mcp.storage.clock import utcnow
from artifact_mcp.storage.index.pipeline import IndexConfig
from artifact_mcp.storage.models import ArtifactPatch, NewArtifact, QueryRequest, Scope
from artifact_mcp.storage.ownership.client import StoreConfig, open_store
from artifact_mcp.storage.services.recall import query_filters, scope_filters
from artifact_mcp.storage.store import ArtifactStore

SCOPE = Scope(org_id="default", workspace_id="default", namespace_id="default")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    cfg = StoreConfig(catalog_path=str(tmp_path / "catalog.duckdb"), blob_url=(tmp_path / "blobs").as_uri(),
                      blob_fsync=False, index=IndexConfig(embedding_model="hash:384"))
    s = open_store(cfg)
    yield s
    s.close()


def index(store: ArtifactStore) -> None:
    while tasks := store.claim_index_jobs(16):
        store.commit_index(tasks, store.prepare_index(tasks))


def create(store: ArtifactStore, name: str, text: str, **extra: Any) -> str:
    art, _ = store.create(SCOPE, NewArtifact(name=name, content=text, **extra))
    index(store)
    return art.artifact_id


def names(store: ArtifactStore, query: str, **extra: Any) -> list[str]:
    return [h.artifact.name for h in store.query(SCOPE, QueryRequest(query=query, mode="keyword", **extra)).results]


def counting(store: ArtifactStore) -> list[int]:
    """Count the eligibility SQL statements the store runs from now on."""
    calls = [0]
    chunks = store.db.chunks
    original = chunks.eligible_expiry

    def wrapped(filters: Any) -> Any:
        calls[0] += 1
        return original(filters)

    chunks.eligible_expiry = wrapped
    return calls


def test_kept_until_the_chunks_change(store: ArtifactStore) -> None:
    aid = create(store, "tapir notes", "tapirs browse at dusk", tags=["zoo"])
    create(store, "okapi notes", "okapis browse too")
    calls = counting(store)
    assert sorted(names(store, "browse")) == ["okapi notes", "tapir notes"]
    first = calls[0]
    for _ in range(3):
        assert sorted(names(store, "browse")) == ["okapi notes", "tapir notes"]
    assert calls[0] == first, "the same filter ran its SQL again with nothing written"
    # In-place update of a filter column (set_fields), then a new artifact, then a delete: each is seen at once.
    assert names(store, "browse", tags=["zoo"]) == ["tapir notes"]
    store.update(SCOPE, aid, ArtifactPatch(tags=["wild"]))
    assert names(store, "browse", tags=["zoo"]) == []
    assert names(store, "browse", tags=["wild"]) == ["tapir notes"]
    create(store, "zebra notes", "zebras browse rarely")
    assert sorted(names(store, "browse")) == ["okapi notes", "tapir notes", "zebra notes"]
    store.delete(SCOPE, aid)
    assert sorted(names(store, "browse")) == ["okapi notes", "zebra notes"]


def test_expiry_applied_at_each_moment(store: ArtifactStore) -> None:
    create(store, "forever", "capybara facts")
    create(store, "soon", "capybara gossip", ttl_seconds=60)
    create(store, "later", "capybara history", ttl_seconds=3600)
    recall = store._recall
    req = QueryRequest(query="capybara")
    store.cache.load(store.db.chunks, store.db.postings)
    start = utcnow()
    for offset in (0, 30, 59, 61, 120, 3599, 3601, 30, 0, 7200):
        now = start + timedelta(seconds=offset)
        kept = recall.eligible(scope_filters(SCOPE, req), now)
        fresh = store.cache.eligible(store.db.chunks.eligible_seqs(query_filters(SCOPE, req, now)))
        assert kept is not None and fresh is not None
        assert np.array_equal(kept.rows, fresh.rows) and np.array_equal(kept.artifacts, fresh.artifacts), offset
        assert kept.n == {0: 3, 30: 3, 59: 3, 61: 2, 120: 2, 3599: 2, 3601: 1, 7200: 1}[offset]


def test_the_mirror_keeps_every_row_as_it_grows(store: ArtifactStore) -> None:
    """Appends past the mirror's capacity (1,024 rows, then a quarter more at a time) keep every earlier row: each
    probe's own chunk is still its best match, in its own artifact."""
    cache = store.cache
    with store._lock:
        cache.load(store.db.chunks, store.db.postings)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, cache.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for i in range(0, 3000, 3):  # artifacts of three chunks, seqs 1..3000
        cache.add(f"a{i // 3}", list(range(i + 1, i + 4)), vectors[i:i + 3], [1, 1, 1], [([7], [1])] * 3)
    el = cache.eligible(np.arange(1, 3001))
    assert el is not None and el.n == 1000
    for probe in (0, 1023, 1500, 2999):
        scores = cache.dense(vectors[probe], el)
        best = int(np.argmax(scores.scores))
        assert cache.artifact_id(int(el.artifacts[best])) == f"a{probe // 3}"
        assert cache.seq(int(scores.best_row[best])) == probe + 1
