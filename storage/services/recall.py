"""Recall: hybrid search over the chunks (eligibility decided by the chunk repository, scoring on the search
cache), promotion to a knowledge source, and an artifact's jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np

from artifact_mcp.storage.clock import to_us, utcnow
from artifact_mcp.storage.ids import new_source_id
from artifact_mcp.storage.index import lexical
from artifact_mcp.storage.index.pipeline import Indexer
from artifact_mcp.storage.index.search import Ranked, build_context, rank
from artifact_mcp.storage.index.search_cache import Eligible, SearchCache
from artifact_mcp.storage.models import (
    ChangeEvent,
    JobList,
    PromoteRequest,
    PromoteResult,
    QueryHit,
    QueryRequest,
    QueryResult,
    Scope,
)
from artifact_mcp.storage.repositories.chunk_filters import ChunkFilter, ChunkFilters, Op, all_of, any_of
from artifact_mcp.storage.repositories.rows import SourceRow
from artifact_mcp.storage.services.context import SUMMARY_COLUMNS, StoreContext, summary_of

log = logging.getLogger(__name__)


def not_expired(now: datetime) -> ChunkFilter:
    return ChunkFilter("expires_at", now.isoformat(), Op.GT)


def query_filters(scope: Scope, req: QueryRequest, now: datetime) -> ChunkFilters:
    """Which chunks a query may see: the caller's scope (plus the workspace's sources), unexpired, its filters."""
    return all_of(scope_filters(scope, req), not_expired(now))


def scope_filters(scope: Scope, req: QueryRequest) -> ChunkFilters:
    """`query_filters` without the expiry: the caller's scope (plus the workspace's sources) and its filters."""
    own = [ChunkFilter("org_id", scope.org_id), ChunkFilter("workspace_id", scope.workspace_id),
           ChunkFilter("namespace_id", scope.namespace_id)]
    if req.thread_id is not None:
        own.append(ChunkFilter("thread_id", req.thread_id))
    where = all_of(*own)
    if req.include_sources:
        # Promoted sources are shared with the whole workspace, whatever their namespace or thread.
        where = any_of(where, all_of(ChunkFilter("collection", "sources"), ChunkFilter("org_id", scope.org_id),
                                     ChunkFilter("workspace_id", scope.workspace_id)))
    parts: list[ChunkFilter | ChunkFilters] = [where]
    if req.artifact_types:
        parts.append(ChunkFilter("artifact_type", list(req.artifact_types), Op.IN))
    if req.tags:
        parts.append(ChunkFilter("tags", list(req.tags), Op.ALL))
    return all_of(*parts)


class RecallService:
    def __init__(self, ctx: StoreContext, indexer: Indexer, cache: SearchCache) -> None:
        self.ctx = ctx
        self.db = ctx.db
        self.indexer = indexer
        self.cache = cache
        self._embedder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="query-embedding")

    def close(self) -> None:
        self._embedder.shutdown(wait=False, cancel_futures=True)

    def query(self, scope: Scope, req: QueryRequest) -> QueryResult:
        cfg = self.indexer.config
        if req.mode != "keyword":
            self.indexer.require_model()
        # Embedding the query (~15 ms with MiniLM) runs on its own thread while the SQL filter and BM25 run here:
        # torch releases the GIL.
        vector = self._embedder.submit(self.indexer.embed_query, req.query) if req.mode != "keyword" else None
        terms = lexical.query_terms(req.query) if req.mode != "semantic" else []
        now = utcnow()
        filters = scope_filters(scope, req)
        depth = max(cfg.candidates, 5 * req.top_k)
        with self.ctx.lock:
            ranked, artifact_of, seq_of = self._retrieve(req.mode, vector, terms, filters, depth, now)
            if req.min_score is not None:
                ranked = [r for r in ranked if r.score >= req.min_score]
            total = len(ranked)
            ranked = ranked[: req.top_k]
            ids = [artifact_of(r.segment) for r in ranked]
            rows = self.db.artifacts.fields_of(ids, SUMMARY_COLUMNS) if ids else {}
            seqs = [seq_of(r.best_row) for r in ranked]
            chunk_rows = self.db.chunks.texts(seqs)
        results: list[QueryHit] = []
        for r, artifact_id, seq in zip(ranked, ids, seqs, strict=True):
            row, chunk = rows.get(artifact_id), chunk_rows.get(seq)
            if row is None or chunk is None:
                continue
            results.append(QueryHit(
                artifact=summary_of(row), score=round(r.score, 6), matched_chunk=chunk.text,
                chunk_index=chunk.chunk_index, chunk_start=chunk.start, chunk_end=chunk.end,
                from_source=chunk.collection == "sources",
            ))
        context, used = build_context(
            [(h.artifact.name, h.artifact.artifact_id, h.artifact.version, h.matched_chunk) for h in results],
            req.max_context_tokens,
        )
        return QueryResult(query=req.query, mode=req.mode, results=results, combined_context=context,
                           total_results=total, context_tokens=used)

    def _retrieve(self, mode: str, vector: Future[np.ndarray] | None, terms: list[int], filters: ChunkFilters,
                  depth: int, now: datetime | None = None
                  ) -> tuple[list[Ranked], Callable[[int], str], Callable[[int], int]]:
        """Ranked artifacts among the unexpired chunks `filters` (`scope_filters`) admit at `now`: the SQL filter
        decides eligibility, the in-memory mirror scores exactly those. With lookups from segment to artifact id and
        from row to chunk seq."""
        cache = self.cache
        if not cache.loaded:
            cache.load(self.db.chunks, self.db.postings)
        eligible = self.eligible(filters, now or utcnow())
        if eligible is None:
            log.warning("search cache was stale; reloading it")
            cache.load(self.db.chunks, self.db.postings)
            eligible = self.eligible(filters, now or utcnow())
            assert eligible is not None, "the search cache misses chunks right after a reload"
        cfg = self.indexer.config
        lexical_scores = cache.bm25(terms, eligible, cfg.bm25_k1, cfg.bm25_b) \
            if mode != "semantic" and eligible.n else None
        dense = cache.dense(vector.result(), eligible) if vector is not None and eligible.n else None
        ranked = rank(mode, dense, lexical_scores, cfg, depth) if eligible.n else []
        arts = eligible.artifacts
        return ranked, (lambda seg: cache.artifact_id(int(arts[seg]))), cache.seq

    def eligible(self, filters: ChunkFilters, now: datetime) -> Eligible | None:
        """The mirror's rows that `filters` admit and that have not expired at `now` (None: the mirror is stale).
        The SQL runs again only after a write to the chunks (or when the mirror changed): see
        `SearchCache.eligible_cached`."""
        chunks = self.db.chunks
        return self.cache.eligible_cached(filters.cache_key(), chunks.changes, to_us(now),
                                          lambda: chunks.eligible_expiry(filters))

    def promote(self, scope: Scope, artifact_id: str, req: PromoteRequest) -> tuple[PromoteResult, ChangeEvent]:
        db = self.db
        now = utcnow()
        with self.ctx.lock:
            row = self.ctx.visible_row(scope, artifact_id, now, include_expired=False)
            latest = db.artifacts.latest(row.root_artifact_id, now)
            assert latest is not None
            root = latest.root_artifact_id
            event = self.ctx.event("updated", scope, root, [latest.artifact_id])
            if latest.promoted_to_source_id:
                found = db.sources.get(latest.promoted_to_source_id)
                if found:
                    return PromoteResult(
                        artifact_id=latest.artifact_id, source_id=found.source_id, source_name=found.source_name,
                        already_promoted=True,
                        message=f"already a knowledge source ({found.source_id}); nothing changed",
                    ), event
            source_id = new_source_id()
            name = req.source_name or latest.name
            with db.transaction():
                db.sources.insert(SourceRow(
                    source_id=source_id, root_artifact_id=root, artifact_id=latest.artifact_id, source_name=name,
                    description=req.description, org_id=scope.org_id, workspace_id=scope.workspace_id,
                    namespace_id=scope.namespace_id, created_at=now,
                ))
                for v in db.artifacts.versions(root, now):
                    db.artifacts.update(v.artifact_id, {"promoted_to_source_id": source_id, "updated_at": now})
                fields: dict[str, Any] = {"is_pinned": True, "ttl_seconds": None, "expires_at": None}
                if latest.is_indexed:
                    fields["index_collection"] = "sources"
                db.artifacts.update(latest.artifact_id, fields)
                db.chunks.set_fields([latest.artifact_id], {"collection": "sources", "expires_at": None})
            return PromoteResult(
                artifact_id=latest.artifact_id, source_id=source_id, source_name=name, already_promoted=False,
                message=f"promoted to knowledge source {source_id!r}: pinned (no expiry) and searchable from every "
                        f"namespace of workspace {scope.workspace_id!r}",
            ), event

    def list_jobs(self, scope: Scope, artifact_id: str) -> JobList:
        now = utcnow()
        with self.ctx.lock:
            row = self.ctx.visible_row(scope, artifact_id, now)
            ids = [v.artifact_id for v in self.db.artifacts.versions(row.root_artifact_id, now)]
            jobs = self.db.jobs.for_artifacts(ids)
        return JobList(artifact_id=artifact_id, root_artifact_id=row.root_artifact_id, jobs=jobs)
