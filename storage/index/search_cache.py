"""An in-memory mirror of the chunk index for fast scoring, with eligibility decided by SQL.

DuckDB stays the durable, transactional home of chunks, embeddings and postings. Scoring 100k chunks
there costs ~90 ms (array_inner_product row by row) plus ~50 ms for BM25 over the postings table on
this 2-core machine; the same work on numpy arrays takes a few ms. So the owner process keeps:

- the embedding matrix (float32, one row per chunk indexed since the last load), rows in `seq` order,
  so the chunks of one artifact version are contiguous rows. float16 would halve its memory, but numpy has no
  fast half-precision product (measured at 100k x 384: float32 matvec ~8 ms, float16 ~590 ms, casting the
  float16 matrix to float32 alone ~80 ms; onnxruntime's float16 MatMul was 2x slower than float32 and its int8
  MatMulInteger no faster, with errors up to 2e-3), so it stays float32;
- per row: the chunk `seq`, its term count and its artifact (an ordinal);
- postings per term as of the last load in compact sorted arrays (CSR: one slice of rows and tfs per term), plus
  the postings appended since, per term.

Which chunks a query may see is decided by one SQL statement over the chunks table (tenant scope,
expiry, thread, type, tags): it returns the eligible seqs, and only those rows are scored, before any
top-k. Deleted or replaced chunks simply stop being eligible; their rows are dropped at the next reload,
which happens when dead rows outnumber live ones. Appends happen after the writing transaction commits,
under the store lock, so the mirror never shows a chunk the catalog does not also have.

The SQL's answer is kept per filter (`eligible_cached`: ~3 ms of SQL and ~2.5 ms of grouping at 100k chunks
saved per query) while the chunk repository's write counter and the mirror's rows are unchanged; the expiry
(`expires_at > now`, the one condition that changes with time) is applied here to the kept answer, exactly as
the SQL applies it, and the grouped result is reused until the next of its chunks expires.

Scores are per artifact: dense = the best chunk's cosine; lexical = BM25 of the whole artifact (term
counts summed over its chunks), with N, average length and document frequencies over the eligible
artifacts only, so another tenant's data never changes a score. Both pick an artifact's best chunk in one
linear pass over the segments (rows ascending, so segments are runs), with no sort.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from artifact_mcp.storage.repositories.protocols import ChunkRepository, PostingRepository

log = logging.getLogger(__name__)


@dataclass
class Eligible:
    """The chunks a query may see, grouped by artifact ("segments" of contiguous rows)."""

    rows: np.ndarray  # eligible row numbers, ascending
    seg_of: np.ndarray  # segment (0..n-1) of each eligible row
    starts: np.ndarray  # first position in `rows` of each segment
    artifacts: np.ndarray  # artifact ordinal of each segment
    _seg_of_row: np.ndarray | None = field(default=None, repr=False)
    _lengths: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.starts)


@dataclass
class ArtifactScores:
    """One retriever's evidence: a score per eligible artifact (segment) and its best row (-1: no match)."""

    scores: np.ndarray
    best_row: np.ndarray
    matched: np.ndarray  # bool: the artifact has any evidence (BM25: a query term occurs in it)


def _grown(a: np.ndarray, size: int, n: int) -> np.ndarray:
    """A `size`-row copy of `a`'s first `n` rows; the rows after are unset (nothing reads past the mirror's row
    count). Not np.resize: it fills the new rows by repeating `a`, touching every page, and grown by less than
    double it returns a view of a base twice the old array (at 16,000 x 384 float32, grown a quarter: a 46 MiB
    base behind a 29 MiB matrix), so the mirror held twice its rows' memory after every growth."""
    out = np.empty((size, *a.shape[1:]), dtype=a.dtype)
    out[:n] = a[:n]
    return out


def _first_max(values: np.ndarray, seg: np.ndarray, n_seg: int) -> tuple[np.ndarray, np.ndarray]:
    """Per segment: the max of `values` and the position of its first occurrence. `seg` (the segment of each
    value) is non-decreasing and covers every segment 0..n_seg-1, so this is linear: no sort."""
    starts = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]]) if len(seg) else np.zeros(0, dtype=np.int64)
    assert len(starts) == n_seg
    best = np.maximum.reduceat(values, starts) if len(values) else values[:0]
    positions = np.flatnonzero(values == best[seg])
    first = positions[np.r_[True, seg[positions[1:]] != seg[positions[:-1]]]] if len(positions) else positions
    return best, first


ELIGIBLE_CACHE_ENTRIES = 4
"""Filters whose eligible chunks are kept (one per scope and filter combination recently searched; ~4 MB each
at 100k chunks)."""
_NEVER = np.iinfo(np.int64).max


@dataclass(eq=False)
class _CachedEligible:
    version: tuple[int, int]  # (the chunk repository's changes, the mirror's generation) when fetched
    seqs: np.ndarray
    expiry: np.ndarray
    eligible: Eligible | None = None
    valid_from: int = 0  # eligible is the answer for now_us in [valid_from, valid_until)
    valid_until: int = 0


class SearchCache:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.loaded = False
        # On a catalog other processes write too (PostgreSQL replicas), a chunk committed elsewhere between a load
        # and a query's eligibility SQL is not stale data but news the change feed is about to bring: such chunks
        # are left out of that query (services/following.py appends them), instead of reloading everything.
        self.tolerate_unknown = False
        self._reset()

    def _reset(self) -> None:
        self._vectors = np.zeros((1024, self.dim), dtype=np.float32)
        self._seqs = np.zeros(1024, dtype=np.int64)
        self._lengths = np.zeros(1024, dtype=np.float32)
        self._art = np.zeros(1024, dtype=np.int64)
        self._n = 0
        # Postings as of the last load, by term (CSR): term t's rows and tfs are _p_rows/_p_tfs[_p_ptr[i]:_p_ptr[i+1]]
        # where _p_terms[i] == t; rows ascending. Postings appended since (add) are in _delta, rows ascending too and
        # above every loaded row.
        self._p_terms = np.zeros(0, dtype=np.int64)
        self._p_ptr = np.zeros(1, dtype=np.int64)
        self._p_rows = np.zeros(0, dtype=np.int32)
        self._p_tfs = np.zeros(0, dtype=np.float32)
        self._delta: dict[int, tuple[array, array]] = {}
        self._art_ids: list[str] = []
        self._art_index: dict[str, int] = {}
        self._removed = 0
        self._row_score = np.zeros(0, dtype=np.float64)  # scratch for bm25, all zeros between calls
        self._generation = getattr(self, "_generation", 0) + 1  # rows renumbered: cached Eligibles are void
        self._eligible_cache: OrderedDict[Hashable, _CachedEligible] = OrderedDict()

    @property
    def rows(self) -> int:
        return self._n

    def artifact_id(self, ordinal: int) -> str:
        return self._art_ids[ordinal]

    def seq(self, row: int) -> int:
        return int(self._seqs[row])

    def _grow(self, extra: int) -> None:
        need = self._n + extra
        if need <= len(self._seqs):
            return
        # A quarter more, not double: at a million chunks the vectors alone are 1.5 GB.
        size = max(need, len(self._seqs) + len(self._seqs) // 4, 1024)
        self._vectors = _grown(self._vectors, size, self._n)
        self._seqs = _grown(self._seqs, size, self._n)
        self._lengths = _grown(self._lengths, size, self._n)
        self._art = _grown(self._art, size, self._n)

    def _ordinal(self, artifact_id: str) -> int:
        ordinal = self._art_index.get(artifact_id)
        if ordinal is None:
            ordinal = self._art_index[artifact_id] = len(self._art_ids)
            self._art_ids.append(artifact_id)
        return ordinal

    # --- writes ------------------------------------------------------------------------------------

    def add(self, artifact_id: str, seqs: list[int], vectors: np.ndarray, lengths: list[int],
            postings: list[tuple[list[int], list[int]]]) -> None:
        """Append one artifact version's chunks (seqs increasing, as chunk_seq hands them out);
        `postings[i]` = (term hashes, tfs) of chunk i."""
        if not self.loaded or not seqs:
            return
        if self._n and seqs[0] <= self._seqs[self._n - 1]:
            # Out of order (cannot happen with one writer): rebuild rather than break the binary search.
            self.loaded = False
            return
        self._grow(len(seqs))
        start, end = self._n, self._n + len(seqs)
        self._vectors[start:end] = vectors
        self._seqs[start:end] = seqs
        self._lengths[start:end] = lengths
        # A re-indexed version gets a fresh ordinal: its old rows (no longer eligible) must not join its segment.
        self._art_index.pop(artifact_id, None)
        self._art[start:end] = self._ordinal(artifact_id)
        self._n = end
        self._generation += 1
        for row, (terms, tfs) in enumerate(postings, start=start):
            for term, tf in zip(terms, tfs, strict=True):
                slot = self._delta.get(term)
                if slot is None:
                    slot = self._delta[term] = (array("i"), array("f"))
                slot[0].append(row)
                slot[1].append(tf)

    def has(self, seqs: np.ndarray) -> np.ndarray:
        """Which of these (sorted) seqs the cache holds."""
        if self._n == 0 or len(seqs) == 0:
            return np.zeros(len(seqs), dtype=bool)
        rows = np.minimum(np.searchsorted(self._seqs[: self._n], seqs), self._n - 1)
        return self._seqs[rows] == seqs

    def note_removed(self, count: int) -> None:
        """Chunks were deleted in SQL; reload once the dead rows outweigh the live ones."""
        self._removed += count
        if self._removed > max(10_000, self._n // 2):
            self.loaded = False

    def load(self, chunks: ChunkRepository, postings: PostingRepository) -> None:
        self._reset()
        self._grow(chunks.count())
        offset = 0
        for batch in chunks.embedding_batches():
            n = len(batch["seq"])
            self._n = offset  # the rows a growth keeps
            self._grow(n)
            self._seqs[offset:offset + n] = batch["seq"]
            self._lengths[offset:offset + n] = batch["n_terms"]
            self._art[offset:offset + n] = [self._ordinal(a) for a in batch["artifact_id"]]
            embedding = batch["embedding"]
            self._vectors[offset:offset + n] = embedding if embedding.ndim == 2 else np.stack(embedding)
            offset += n
        self._n = offset
        post = postings.all()
        if len(post["term"]) and self._n:
            rows = np.minimum(np.searchsorted(self._seqs[: self._n], post["seq"]), self._n - 1)
            valid = self._seqs[rows] == post["seq"]
            terms = post["term"][valid]
            self._p_rows = rows[valid].astype(np.int32)
            self._p_tfs = post["tf"][valid].astype(np.float32)
            del post, rows, valid
            bounds = np.flatnonzero(terms[1:] != terms[:-1]) + 1
            self._p_terms = terms[np.r_[0, bounds]] if len(terms) else terms
            self._p_ptr = np.r_[0, bounds, len(terms)].astype(np.int64)
        self._row_score = np.zeros(len(self._seqs), dtype=np.float64)
        self.loaded = True
        log.info("search cache loaded: %d chunks, %d terms", self._n, len(self._p_terms))

    # --- reads -------------------------------------------------------------------------------------

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        """A term's (rows ascending, tfs as float32), loaded and appended."""
        i = int(np.searchsorted(self._p_terms, term))
        if i < len(self._p_terms) and self._p_terms[i] == term:
            lo, hi = int(self._p_ptr[i]), int(self._p_ptr[i + 1])
            rows, tfs = self._p_rows[lo:hi], self._p_tfs[lo:hi]
        else:
            rows, tfs = self._p_rows[:0], self._p_tfs[:0]
        extra = self._delta.get(term)
        if extra is not None:
            rows = np.concatenate([rows, np.frombuffer(extra[0], dtype=np.int32)])
            tfs = np.concatenate([tfs, np.frombuffer(extra[1], dtype=np.float32)])
        return rows, tfs

    def eligible_cached(self, key: Hashable, changes: int, now_us: int,
                        fetch: Callable[[], tuple[np.ndarray, np.ndarray]]) -> Eligible | None:
        """`eligible` for the chunks a filter admits at `now_us`, kept between queries.

        `fetch` runs the filter without its expiry condition: (seqs, expiry in µs, int64 max for never). Its answer
        is kept under `key` (the filters' `cache_key()`) while the chunk repository's `changes` counter and
        this mirror's rows stay the same; the expiry is applied here (`expiry > now`, as the SQL filter does), and
        the grouped answer is reused until the next chunk among them expires. None as from `eligible`."""
        entry = self._eligible_cache.get(key)
        if entry is None or entry.version != (changes, self._generation):
            seqs, expiry = fetch()
            if len(seqs) > 1 and not bool(np.all(seqs[1:] > seqs[:-1])):
                order = np.argsort(seqs, kind="stable")
                seqs, expiry = seqs[order], expiry[order]
            entry = _CachedEligible((changes, self._generation), seqs, expiry)
            self._eligible_cache[key] = entry
            while len(self._eligible_cache) > ELIGIBLE_CACHE_ENTRIES:
                self._eligible_cache.popitem(last=False)
        self._eligible_cache.move_to_end(key)
        if entry.eligible is None or not entry.valid_from <= now_us < entry.valid_until:
            live = entry.expiry > now_us
            eligible = self.eligible(entry.seqs if bool(live.all()) else entry.seqs[live])
            if eligible is None:
                del self._eligible_cache[key]
                return None
            future = entry.expiry[live]
            entry.eligible, entry.valid_from = eligible, now_us
            entry.valid_until = int(future.min()) if len(future) else _NEVER
        return entry.eligible

    def eligible(self, seqs: np.ndarray) -> Eligible | None:
        """The eligible rows (from the SQL filter's seqs) grouped by artifact; None when the mirror lacks one of
        them, i.e. it is stale and must be reloaded."""
        if len(seqs) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return Eligible(empty, empty, empty, empty)
        if self._n == 0:
            if not self.tolerate_unknown:
                return None
            empty = np.zeros(0, dtype=np.int64)
            return Eligible(empty, empty, empty, empty)
        if len(seqs) > 1 and not bool(np.all(seqs[1:] > seqs[:-1])):
            seqs = np.sort(seqs)  # DuckDB usually returns them in insertion (= seq) order already
        rows = np.minimum(np.searchsorted(self._seqs[: self._n], seqs), self._n - 1)
        if not np.array_equal(self._seqs[rows], seqs):
            if not self.tolerate_unknown:
                return None
            rows = rows[self._seqs[rows] == seqs]
            if len(rows) == 0:
                empty = np.zeros(0, dtype=np.int64)
                return Eligible(empty, empty, empty, empty)
        arts = self._art[rows]
        change = np.flatnonzero(arts[1:] != arts[:-1]) + 1
        starts = np.r_[0, change]
        seg_of = np.zeros(len(rows), dtype=np.int64)
        seg_of[change] = 1
        seg_of = np.cumsum(seg_of)
        return Eligible(rows=rows, seg_of=seg_of, starts=starts, artifacts=arts[starts])

    def _seg_of_row(self, el: Eligible) -> np.ndarray:
        """Segment of every mirror row (-1: not eligible), made once per Eligible."""
        if el._seg_of_row is None or len(el._seg_of_row) < self._n:
            seg_of_row = np.full(self._n, -1, dtype=np.int64)
            seg_of_row[el.rows] = el.seg_of
            el._seg_of_row = seg_of_row
        return el._seg_of_row

    def dense(self, query: np.ndarray, el: Eligible) -> ArtifactScores:
        """Cosine of each eligible artifact's best chunk (vectors are unit length)."""
        query = query.astype(self._vectors.dtype, copy=False)
        if len(el.rows) > self._n // 2:
            chunk_scores = (self._vectors[: self._n] @ query)[el.rows]
        else:
            chunk_scores = self._vectors[el.rows] @ query
        # The best row of each segment: the first (lowest) row where the chunk score equals its segment's max.
        best, first = _first_max(chunk_scores, el.seg_of, el.n)
        return ArtifactScores(scores=best.astype(np.float64), best_row=el.rows[first],
                              matched=np.ones(el.n, dtype=bool))

    def bm25(self, terms: list[int], el: Eligible, k1: float, b: float) -> ArtifactScores:
        """BM25 of whole artifacts (chunk term counts summed), statistics over the eligible artifacts. `terms` are
        the query's distinct term hashes."""
        n = el.n
        scores = np.zeros(n, dtype=np.float64)
        best_row = np.full(n, -1, dtype=np.int64)
        if n == 0 or not terms:
            return ArtifactScores(scores, best_row, np.zeros(n, dtype=bool))
        seg_of_row = self._seg_of_row(el)
        if el._lengths is None:
            el._lengths = np.add.reduceat(self._lengths[el.rows].astype(np.float64), el.starts)
        dl = el._lengths
        avgdl = float(dl.mean()) or 1.0
        # Per-row evidence (idf-weighted term counts), to name the chunk that matched best: accumulated in a
        # scratch array that is all zeros again when this returns.
        row_score = self._row_score
        if len(row_score) < self._n:
            row_score = self._row_score = np.zeros(len(self._seqs), dtype=np.float64)
        touched: list[np.ndarray] = []
        for term in terms:
            rows, tfs = self.postings(term)
            if not len(rows):
                continue
            segs = seg_of_row[rows]
            keep = segs >= 0
            if not keep.all():
                rows, segs, tfs = rows[keep], segs[keep], tfs[keep]
                if not len(rows):
                    continue
            # Rows ascending, so segments are non-decreasing: each segment's tf is one run of them.
            runs = np.flatnonzero(segs[1:] != segs[:-1]) + 1
            runs = np.concatenate(([0], runs))
            present = segs[runs]
            tf = np.add.reduceat(tfs, runs, dtype=np.float64)
            df = len(present)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            scores[present] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl[present] / avgdl))
            row_score[rows] += idf * tfs  # a term's postings hold each row once
            touched.append(rows)
        matched = scores > 0
        if touched:
            if len(touched) == 1:
                hit_rows = touched[0]
            elif sum(len(t) for t in touched) < self._n // 16:
                hit_rows = np.unique(np.concatenate(touched))
            else:
                hit_rows = np.flatnonzero(row_score[: self._n])
            segs = seg_of_row[hit_rows]
            values = row_score[hit_rows]
            row_score[hit_rows] = 0.0
            step = np.empty(len(segs), dtype=np.int64)
            step[0] = 0
            np.not_equal(segs[1:], segs[:-1], out=step[1:])
            rank_of = np.cumsum(step)  # 0, 0, 1, 1, 1, 2, ...: the hit rows' segments numbered densely
            _, first = _first_max(values, rank_of, int(rank_of[-1]) + 1)
            best_row[segs[first]] = hit_rows[first]
        return ArtifactScores(scores=scores, best_row=best_row, matched=matched)
