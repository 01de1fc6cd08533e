"""Hybrid retrieval: fuse per-artifact semantic and BM25 scores, keep the artifacts with evidence, pick matched
chunks, build the context block."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from artifact_mcp.storage.index.cl100k import count_tokens, encoding, tokenizer
from artifact_mcp.storage.index.embeddings import MINILM_IDS
from artifact_mcp.storage.index.pipeline import IndexConfig
from artifact_mcp.storage.index.search_cache import ArtifactScores

# --- evidence --------------------------------------------------------------------------------------------
#
# A result needs evidence: a lexical match (a query term occurs in the artifact: BM25 > 0), or a dense cosine
# similarity above the model's floor. Without it an artifact is not a result at all, however few others there
# are: it is not ranked, not counted in total_results and its chunk never reaches the combined context.

MINILM_DENSE_FLOOR = 0.20
"""all-MiniLM-L6-v2: the cosine an artifact's best chunk must exceed for the semantic side alone to count as
evidence. Measured on SciFact train (the bench's chunks and vectors, its 809 queries replayed on the search
cache, top 100): no figure of any mode moves for floors up to 0.23 (hybrid nDCG@10 0.7469, Recall@100 0.9563,
MRR@10 0.7159; semantic 0.6945 / 0.9345 / 0.6668); at 0.24 semantic Recall@100 loses a relevant abstract (0.9333),
at 0.30 hybrid does too (0.9551), and at 0.40 semantic nDCG@10 drops (0.6906). 1% of the relevant abstracts
score below 0.236, and those the lexical side misses score 0.287 or more. Off-topic queries (codewords,
"lunch menu tomato soup", "kubectl rollout status") have a best cosine of 0.21-0.37 over the 5,183 abstracts and
clear 0.20 for 5-70 of them, against 45-400 above 0.15: 0.20 keeps a margin below the first recall loss
(SciFact's queries are whole sentences; agents' are often shorter) while dropping most of that noise."""


def dense_floor(model_id: str) -> float:
    """The cosine an artifact's best chunk must exceed to count as evidence with embedding model `model_id`.

    - all-MiniLM-L6-v2 (the default; fp32 or int8): MINILM_DENSE_FLOOR, measured (on fp32 vectors).
    - `hash-<dim>` (feature hashing, lexical only): 3 / sqrt(dim). A text that shares no token with the query
      still gets a cosine from hash collisions alone: a sum of +-1 collisions over sqrt(n * m) (n, m: the
      two texts' term counts), whose standard deviation is 1 / sqrt(dim) whatever n and m are. Three of those
      (0.153 at 384 dims): simulated at 384 dims, a text sharing no token clears it 0.2-0.6% of the time, up
      to 4% when both texts are a few terms long (one collision is then a large cosine). One shared token
      clears it while n * m <= dim / 9: hash vectors are evidence for short texts and short queries only; the
      lexical side (keyword, hybrid) is what finds a term in a long one.
    - any other model: no floor was measured, so any positive cosine counts (orthogonal or opposite vectors
      are no evidence).
    """
    if model_id in MINILM_IDS:
        return MINILM_DENSE_FLOOR
    kind, _, dim = model_id.partition("-")
    if kind == "hash" and dim.isdigit() and int(dim) > 0:
        return 3.0 / math.sqrt(int(dim))
    return 0.0


def evidence(mode: str, dense: ArtifactScores | None, lexical: ArtifactScores | None, floor: float,
             among: np.ndarray | None = None) -> np.ndarray:
    """Per eligible artifact (or per artifact in `among`, segment numbers): whether it has evidence for this query
    in `mode` (see `dense_floor`)."""
    pick = slice(None) if among is None else among
    lexical_hit = lexical.matched[pick] if lexical is not None and mode != "semantic" else None
    dense_hit = dense.scores[pick] > floor if dense is not None and mode != "keyword" else None
    if lexical_hit is not None and dense_hit is not None:
        return lexical_hit | dense_hit
    hit = lexical_hit if lexical_hit is not None else dense_hit
    assert hit is not None, f"no scores for mode {mode!r}"
    return hit


@dataclass(frozen=True, slots=True)
class Ranked:
    segment: int  # index into the eligible artifacts
    score: float  # 0-1
    best_row: int  # the matched chunk's row in the search cache


def _z(values: np.ndarray) -> np.ndarray:
    """Standard scores over the whole eligible population (a constant list scores 0 throughout)."""
    std = float(values.std())
    return (values - values.mean()) / std if std > 1e-12 else np.zeros_like(values)


def _top(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    if len(candidates) > k:
        candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
    return candidates


def rank(mode: str, dense: ArtifactScores | None, lexical: ArtifactScores | None, config: IndexConfig,
         depth: int, floor: float | None = None) -> list[Ranked]:
    """Artifacts with evidence (`evidence`; `floor` defaults to the model's `dense_floor`), best first, with a
    0-1 score and their matched chunk.

    Hybrid is a convex combination of z-scores: 0.7 x semantic + 0.3 x BM25 by default, both standardised
    over *all* eligible artifacts (BM25 counts 0 where no query term occurs). On SciFact (train) it gave
    nDCG@10 0.747 against 0.741 for min-max scaling and 0.729 for the best reciprocal rank fusion, flat for
    weights 0.65-0.75 (bench/recall.py; the issue's closing note has the table). Candidates are the top
    `depth` of each side: an artifact in neither cannot outrank them."""
    # Final scores and matched chunks are computed for the candidates only (`final[j]`, `rows[j]` for `cand[j]`).
    if mode == "semantic":
        assert dense is not None
        cand = _top(dense.scores, np.arange(len(dense.scores)), depth)
        final = np.clip(dense.scores[cand], 0.0, 1.0)
        rows = dense.best_row[cand]
    elif mode == "keyword":
        assert lexical is not None
        cand = _top(lexical.scores, np.flatnonzero(lexical.matched), depth)
        top = float(lexical.scores[cand].max()) if len(cand) else 1.0
        final = lexical.scores[cand] / (top or 1.0)
        rows = lexical.best_row[cand]
    else:
        assert dense is not None and lexical is not None
        alpha = config.fusion_alpha
        zd, zl = _z(dense.scores), _z(lexical.scores)
        if config.fusion == "rrf":
            fused = np.zeros(len(dense.scores))
            for side in (dense.scores, np.where(lexical.matched, lexical.scores, -np.inf)):
                order = np.argsort(-side, kind="stable")
                ranks = np.empty(len(side))
                ranks[order] = np.arange(1, len(side) + 1)
                fused += np.where(np.isfinite(side), 1.0 / (config.rrf_k + ranks), 0.0)
        elif config.fusion == "relative":
            fused = alpha * _minmax(dense.scores) + (1 - alpha) * _minmax(lexical.scores)
        else:
            fused = alpha * zd + (1 - alpha) * zl
        cand = np.union1d(_top(dense.scores, np.arange(len(dense.scores)), depth),
                          _top(lexical.scores, np.flatnonzero(lexical.matched), depth))
        fused = fused[cand]
        lo, hi = (float(fused.min()), float(fused.max())) if len(cand) else (0.0, 1.0)
        final = (fused - lo) / (hi - lo) if hi - lo > 1e-12 else np.ones_like(fused)
        # The matched chunk: the lexical side's best chunk where keywords carry more of the score, else the
        # semantic side's.
        lex_row = lexical.best_row[cand]
        use_lex = (lex_row >= 0) & ((1 - alpha) * zl[cand] > alpha * zd[cand])
        rows = np.where(use_lex, lex_row, dense.best_row[cand])
    # Scores are scaled over all candidates as before; those without evidence are then left out (the order of
    # the rest is unchanged).
    keep = evidence(mode, dense, lexical, dense_floor(config.model_id) if floor is None else floor, cand)
    cand, final, rows = cand[keep], final[keep], rows[keep]
    order = np.lexsort((cand, -final))  # best first; ties by segment
    return [Ranked(int(cand[j]), float(final[j]), int(rows[j])) for j in order.tolist()]


def _minmax(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi - lo > 1e-12 else np.zeros_like(values)


def _truncate(text: str, max_tokens: int) -> str:
    toks = tokenizer()(text)
    if len(toks) <= max_tokens:
        return text
    # Two tokens are kept for the ellipsis.
    return encoding().decode(toks[: max(0, max_tokens - 2)]) + " …"


def build_context(entries: list[tuple[str, str, int, str]], max_tokens: int) -> tuple[str, int]:
    """`entries` are (name, artifact_id, version, chunk text), best first. Whole chunks while they fit; the first
    one is truncated rather than dropped when it alone is over budget. Returns (context, its token count)."""
    if max_tokens <= 0:
        return "", 0
    parts: list[str] = []
    used = 0
    for i, (name, artifact_id, version, text) in enumerate(entries, start=1):
        block = f"[{i}] {name} (artifact_id: {artifact_id}, v{version})\n{text.strip()}\n"
        cost = count_tokens(block) + (1 if parts else 0)  # the joining newline
        if used + cost > max_tokens:
            if parts:
                break
            block = _truncate(block, max_tokens)
            while block and count_tokens(block) > max_tokens:
                block = _truncate(block, count_tokens(block) - 2)
            cost = count_tokens(block)
        parts.append(block)
        used += cost
    # Tokens can merge across a join: re-count the whole and drop from the end if it came out over.
    context = "\n".join(parts)
    total = count_tokens(context)
    while len(parts) > 1 and total > max_tokens:
        parts.pop()
        context = "\n".join(parts)
        total = count_tokens(context)
    return context, total
