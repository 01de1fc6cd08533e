"""Following other processes' chunk writes on a shared catalog (PostgreSQL), so this process's search cache
finds what any replica indexed.

The cache (index/search_cache.py) already catches what it misses: a query whose SQL eligibility names a chunk
the cache lacks reloads it whole. Following makes that the exception: each change another process commits is
applied as it comes (its chunks' vectors and postings appended, removals counted), and every change bumps the
chunk store's `changes`, so eligibility cached by a query is recomputed. Visibility lag is one notification (or
one poll when notifications are lost) plus the fetch of the new rows.
"""

from __future__ import annotations

import numpy as np

from artifact_mcp.storage.index.search_cache import SearchCache
from artifact_mcp.storage.repositories.protocols import ChangeFeed
from artifact_mcp.storage.repositories.rows import ChunkVector
from artifact_mcp.storage.services.context import StoreContext


class FollowingService:
    def __init__(self, ctx: StoreContext, cache: SearchCache, feed: ChangeFeed) -> None:
        self.ctx = ctx
        self.cache = cache
        self.feed = feed
        cache.tolerate_unknown = True
        feed.start()  # before the cache loads: nothing committed after the load is missed

    def wait(self, timeout: float) -> bool:
        return self.feed.wait(timeout)

    def follow(self) -> int:
        """Apply the changes other processes committed since the last call; how many."""
        changes = self.feed.read()
        if not changes:
            return 0
        cache = self.cache
        with self.ctx.lock:
            self.ctx.db.chunks.note_foreign_change()
            if any(c.cleared for c in changes):
                cache.loaded = False
                return len(changes)
            removed = sum(len(c.removed_ids) for c in changes)
            if removed:
                cache.note_removed(removed)
            if cache.loaded:
                last = cache.seq(cache.rows - 1) if cache.rows else 0
                added = np.asarray(sorted({s for c in changes for s in c.added_seqs}), dtype=np.int64)
                older = added[added <= last]
                if len(older) and not bool(cache.has(older).all()):
                    # Committed out of order (its seq was taken before the last one the cache holds): the cache
                    # cannot insert it in place, so it is loaded again before the next query.
                    cache.loaded = False
                    return len(changes)
                fresh = added[added > last].tolist()
                if fresh:
                    self._append(fresh)
        return len(changes)

    def _append(self, seqs: list[int]) -> None:
        rows = self.feed.chunk_rows(seqs)
        terms: dict[int, tuple[list[int], list[int]]] = {}
        for seq, term, tf in self.feed.postings_of([r.seq for r in rows]):
            slot = terms.setdefault(seq, ([], []))
            slot[0].append(term)
            slot[1].append(tf)
        by_artifact: dict[str, list[ChunkVector]] = {}
        for r in rows:
            by_artifact.setdefault(r.artifact_id, []).append(r)
        for artifact_id, group in sorted(by_artifact.items(), key=lambda kv: kv[1][0].seq):
            vectors = np.frombuffer(b"".join(g.embedding for g in group), dtype="<f4").reshape(len(group),
                                                                                               self.cache.dim)
            self.cache.add(artifact_id, [g.seq for g in group], vectors, [g.n_terms for g in group],
                           [terms.get(g.seq, ([], [])) for g in group])
