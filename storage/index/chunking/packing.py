"""Shared machinery: token counts, locating a parser's chunks back in the source, packing text into chunks at
boundaries when no parser helps, and finishing a split (trim, order, fill any gap a parser left)."""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence

from artifact_mcp.storage.index.chunking.spans import Span
from artifact_mcp.storage.index.cl100k import count_tokens

log = logging.getLogger(__name__)


def capped_tokens(text: str, budget: int) -> int:
    """Token count of `text`, or just `budget + 1` for text far too long to fit.

    Tokenizing is superlinear on a long run without spaces (1 MB of base64 or CJK takes seconds),
    and an exact count is useless there: the text gets cut anyway.
    """
    return budget + 1 if len(text) > 16 * budget else count_tokens(text)


def fits(text: str, budget: int) -> bool:
    # An ASCII character is never more than one token, so short ASCII text needs no tokenizing.
    return (len(text) <= budget and text.isascii()) or capped_tokens(text, budget) <= budget


NON_SPACE = re.compile(r"\S")


def trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    m = NON_SPACE.search(text, start, end)
    if m is None:
        return None
    start = m.start()
    while text[end - 1].isspace():
        end -= 1
    return start, end


def _align(text: str, chunk: str, lo: int, hi: int) -> tuple[int, int] | None:
    """The range of text[lo:hi] holding `chunk`'s words in order: for a parser that normalised whitespace."""
    pos = lo
    first = -1
    for word in chunk.split():
        i = text.find(word, pos, hi)
        if i < 0:
            return None
        if first < 0:
            first = i
        pos = i + len(word)
    return (first, pos) if first >= 0 else None


def locate_all(text: str, chunks: Sequence[str], lo: int, hi: int) -> list[tuple[int, int] | None]:
    """Offsets of successive chunks of text[lo:hi], each overlapping or following the one before (None: not found)."""
    out: list[tuple[int, int] | None] = []
    prev_start, prev_end = lo - 1, lo
    for chunk in chunks:
        after = NON_SPACE.search(text, prev_end, hi)
        latest = after.start() if after else prev_end
        # Repeated text (logs, tables) matches in many places; the right place is the last one that
        # starts no later than where the previous chunk stopped: no gap, and the most progress.
        i = text.rfind(chunk, prev_start + 1, min(hi, latest + len(chunk)))
        # Farther than that, something was skipped (gap filling recovers it); bounding the search
        # keeps a parser that rewrites its chunks from costing a scan of the whole text per chunk.
        window = min(hi, latest + 2 * len(chunk) + 256)
        if i < 0:
            i = text.find(chunk, prev_start + 1, window)
        loc = (i, i + len(chunk)) if i >= 0 else _align(text, chunk, prev_start + 1, window)
        if loc is None:
            log.debug("chunk not found in source, left to gap filling: %.60r", chunk)
        else:
            prev_start, prev_end = loc
        out.append(loc)
    return out


# Boundaries, coarsest first, at which text may be cut when no parser helps.
_PARAGRAPHS = re.compile(r"\n[^\S\n]*\n\s*")
_LINES = re.compile(r"\n")
_WORDS = re.compile(r"\s+")
_IDENTIFIERS = re.compile(r"(?<=\w)(?=\W)|(?<=\W)(?=\w)")
TEXT_LEVELS = (_PARAGRAPHS, _LINES, _WORDS)
CODE_LEVELS = (_PARAGRAPHS, _LINES, _IDENTIFIERS)


def pack(text: str, lo: int, hi: int, budget: int, levels: Sequence[re.Pattern[str]]) -> list[tuple[int, int]]:
    """Greedily pack text[lo:hi] into ranges of at most `budget` tokens, cutting only at `levels` boundaries.

    A piece with no boundary left is cut into windows of at most `budget` tokens: that only happens
    to a run of word characters thousands long, which is data, not an identifier.
    """
    if not levels:
        windows = []
        while lo < hi:
            end = min(lo + budget, hi)
            while end - lo > 1 and not fits(text[lo:end], budget):
                end = lo + (end - lo) // 2
            windows.append((lo, end))
            lo = end
        return windows
    cuts = sorted({lo, hi, *(m.end() for m in levels[0].finditer(text, lo, hi) if lo < m.end() < hi)})
    out: list[tuple[int, int]] = []
    cur_start, cur_end, cur_tokens = -1, -1, 0
    for a, b in itertools.pairwise(cuts):
        n = capped_tokens(text[a:b], budget)
        if n > budget:
            if cur_start >= 0:
                out.append((cur_start, cur_end))
                cur_start = -1
            out.extend(pack(text, a, b, budget, levels[1:]))
            continue
        if cur_start >= 0 and cur_tokens + n > budget:
            out.append((cur_start, cur_end))
            cur_start = -1
        if cur_start < 0:
            cur_start, cur_tokens = a, 0
        cur_end, cur_tokens = b, cur_tokens + n
    if cur_start >= 0:
        out.append((cur_start, cur_end))
    return out


def cuts_word(text: str, i: int) -> bool:
    return 0 < i < len(text) and not text[i - 1].isspace() and not text[i].isspace()


def finish(text: str, spans: list[Span], budget: int) -> list[Span]:
    """Trim, order and de-duplicate spans, then add a span for any text no parser accounted for."""
    trimmed: list[Span] = []
    for sp in spans:
        found = trim(text, max(sp.start, 0), min(sp.end, len(text)))
        if found:
            trimmed.append(Span(*found, sp.prefix))
    trimmed.sort(key=lambda sp: (sp.start, -sp.end))
    out: list[Span] = []
    covered = 0
    for sp in trimmed:
        if out and sp.end <= out[-1].end:
            continue  # inside the previous span: adds nothing
        if sp.start > covered and NON_SPACE.search(text, covered, sp.start):
            out.extend(Span(s, e) for s, e in _gap(text, covered, sp.start, budget))
        out.append(sp)
        covered = sp.end
    if NON_SPACE.search(text, covered):
        out.extend(Span(s, e) for s, e in _gap(text, covered, len(text), budget))
    return out


def _gap(text: str, lo: int, hi: int, budget: int) -> list[tuple[int, int]]:
    log.debug("chunker skipped text at %d:%d; adding it back", lo, hi)
    return [r for s, e in pack(text, lo, hi, budget, TEXT_LEVELS) if (r := trim(text, s, e))]
