"""Hybrid retrieval: fuse per-artifact semantic and BM25 scores, pick matched chunks, build the context block."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from artifact_mcp.storage.index.pipeline import IndexConfig
from artifact_mcp.storage.index.search_cache import ArtifactScores


@dataclass(frozen=True, slots=True)
class ChunkRow:
    seq: int
    artifact_id: str
    chunk_index: int
    start: int
    end: int
    text: str
    collection: str


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
         depth: int) -> list[Ranked]:
    """Artifacts best first with a 0-1 score and their matched chunk.

    Hybrid is a convex combination of z-scores: 0.7 x semantic + 0.3 x BM25 by default, both standardised
    over *all* eligible artifacts (BM25 counts 0 where no query term occurs). On SciFact (train) it gave
    nDCG@10 0.747 against 0.741 for min-max scaling and 0.729 for the best reciprocal rank fusion, flat for
    weights 0.65-0.75 (bench/recall.py; the issue's closing note has the table). Candidates are the top
    `depth` of each side: an artifact in neither cannot outrank them."""
    if mode == "semantic":
        assert dense is not None
        cand = _top(dense.scores, np.arange(len(dense.scores)), depth)
        final = np.clip(dense.scores, 0.0, 1.0)
        rows = dense.best_row
    elif mode == "keyword":
        assert lexical is not None
        cand = _top(lexical.scores, np.flatnonzero(lexical.matched), depth)
        top = float(lexical.scores[cand].max()) if len(cand) else 1.0
        final = lexical.scores / (top or 1.0)
        rows = lexical.best_row
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
        lo, hi = (float(fused[cand].min()), float(fused[cand].max())) if len(cand) else (0.0, 1.0)
        final = (fused - lo) / (hi - lo) if hi - lo > 1e-12 else np.ones_like(fused)
        # The matched chunk: the lexical side's best chunk where keywords carry more of the score, else the
        # semantic side's.
        use_lex = (lexical.best_row >= 0) & ((1 - alpha) * zl > alpha * zd)
        rows = np.where(use_lex, lexical.best_row, dense.best_row)
    order = sorted(cand.tolist(), key=lambda i: (-float(final[i]), i))
    return [Ranked(i, float(final[i]), int(rows[i])) for i in order]


def _minmax(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi - lo > 1e-12 else np.zeros_like(values)


@lru_cache(maxsize=1)
def _tokenizer() -> Callable[[str], list[int]]:
    # llama-index-core ships tiktoken's cl100k cache: no download.
    from llama_index.core.utils import get_tokenizer

    return get_tokenizer()


def count_tokens(text: str) -> int:
    return len(_tokenizer()(text))


def _truncate(text: str, max_tokens: int) -> str:
    toks = _tokenizer()(text)
    if len(toks) <= max_tokens:
        return text
    import tiktoken

    # get_tokenizer is cl100k's encode; decode with the same encoding. Two tokens are kept for the ellipsis.
    return tiktoken.get_encoding("cl100k_base").decode(toks[: max(0, max_tokens - 2)]) + " …"


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
    while len(parts) > 1 and count_tokens("\n".join(parts)) > max_tokens:
        parts.pop()
    context = "\n".join(parts)
    return context, count_tokens(context)
