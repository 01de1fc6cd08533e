"""Hybrid retrieval: fuse dense and lexical chunk rankings, group by artifact, build the context block."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from storage.index.pipeline import IndexConfig


@dataclass(frozen=True, slots=True)
class ChunkRow:
    seq: int
    artifact_id: str
    chunk_index: int
    start: int
    end: int
    text: str
    collection: str


@dataclass(slots=True)
class ArtifactHit:
    artifact_id: str
    score: float
    chunk: ChunkRow


def _normalise(scores: dict[str, float]) -> dict[str, float]:
    """Min-max to [0, 1] over this list's candidates (a single candidate scores 1)."""
    if not scores:
        return {}
    hi, lo = max(scores.values()), min(scores.values())
    if hi - lo <= 1e-12:
        return dict.fromkeys(scores, 1.0)
    return {k: (v - lo) / (hi - lo) for k, v in scores.items()}


def _per_artifact(ranked: list[tuple[int, float]], chunks: dict[int, ChunkRow]) -> dict[str, float]:
    """Best chunk score per artifact, keeping the list's order of first appearance."""
    best: dict[str, float] = {}
    for seq, score in ranked:
        row = chunks.get(seq)
        if row is not None and row.artifact_id not in best:
            best[row.artifact_id] = score
    return best


def fuse(
    dense: list[tuple[int, float]],
    lexical: list[tuple[int, float]],
    chunks: dict[int, ChunkRow],
    config: IndexConfig,
    mode: str,
) -> list[ArtifactHit]:
    """Artifacts ranked best first, each with its fused score (0-1) and best matching chunk.

    Fusion happens per artifact, not per chunk: an artifact's evidence from each retriever is its best
    chunk there, so a long artifact with many mediocre chunks does not outvote a short precise one."""
    dense_a = _per_artifact(dense, chunks)
    lex_a = _per_artifact(lexical, chunks)
    if mode == "semantic":
        fused = {a: max(0.0, min(1.0, s)) for a, s in dense_a.items()}
    elif mode == "keyword":
        fused = _normalise(lex_a)
    elif config.fusion == "rrf":
        k = config.rrf_k
        fused = {}
        for ranked in (list(dense_a), list(lex_a)):
            for rank, art in enumerate(ranked):
                fused[art] = fused.get(art, 0.0) + 1.0 / (k + rank + 1)
        top = 2.0 / (k + 1)
        fused = {a: s / top for a, s in fused.items()}
    else:
        # A side with no candidates at all (no query term occurs anywhere) leaves the other side in charge.
        alpha = config.fusion_alpha if dense_a and lex_a else (1.0 if dense_a else 0.0)
        dn, ln = _normalise(dense_a), _normalise(lex_a)
        fused = {a: alpha * dn.get(a, 0.0) + (1 - alpha) * ln.get(a, 0.0) for a in dn.keys() | ln.keys()}

    # The matched chunk: the artifact's chunk with the best combined evidence from both lists.
    chunk_score: dict[int, float] = {}
    for ranked, weight in ((dense, 1.0), (lexical, 1.0)):
        if not ranked:
            continue
        top = max(s for _, s in ranked) or 1.0
        for seq, s in ranked:
            chunk_score[seq] = chunk_score.get(seq, 0.0) + weight * s / top
    best_chunk: dict[str, ChunkRow] = {}
    for seq, _ in sorted(chunk_score.items(), key=lambda kv: (-kv[1], kv[0])):
        row = chunks.get(seq)
        if row is not None and row.artifact_id not in best_chunk:
            best_chunk[row.artifact_id] = row
    hits = [ArtifactHit(a, s, best_chunk[a]) for a, s in fused.items() if a in best_chunk]
    hits.sort(key=lambda h: (-h.score, h.artifact_id))
    return hits


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
