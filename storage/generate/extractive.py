"""Extractive summarization: rank the material's sentences, keep the best within a word budget.

Offline and deterministic (the same material gives the same text). Each artifact's text is cut into chunks by
the indexer's own structure-aware chunker (markdown sections, code, JSON, prose), chunks into sentences; a
sentence scores by the TF-IDF weight of its terms over the whole material (what the material keeps talking
about), normalised by length, with a small bonus for leading sentences (authors front-load their point). Near
duplicates of an already chosen sentence are skipped.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from artifact_mcp.storage.index import chunking

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'_-]*")
_MARKUP = re.compile(r"^\s*(?:#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s*)")
_STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between both but
by can could did do does doing down during each few for from further had has have having he her here hers herself
him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or
other our ours ourselves out over own same she should so some such than that the their theirs them themselves then
there these they this those through to too under until up very was we were what when where which while who whom
why will with would you your yours yourself yourselves also may might must shall us via per using used use
""".split())  # noqa: SIM905 (a word list reads better as text)
MIN_WORDS, MAX_WORDS_PER_SENTENCE = 4, 80


@dataclass
class Sentence:
    source: int  # index of the material item
    position: int  # order within the item
    text: str
    terms: frozenset[str]
    words: int
    score: float = 0.0


def _terms(text: str) -> list[str]:
    return [w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in _STOPWORDS and len(w) > 2]


def _clean(line: str) -> str:
    return _MARKUP.sub("", line).replace("**", "").replace("__", "").replace("`", "").strip()


def sentences_of(text: str, mime_type: str) -> list[str]:
    """The text's sentences, in order: chunk boundaries (headings, code blocks, JSON members) are kept."""
    out: list[str] = []
    for span in chunking.split(text, mime_type):
        raw = text[span.start:span.end] if span.end > span.start else span.text
        for paragraph in re.split(r"\n\s*\n", raw):
            lines = [_clean(line) for line in paragraph.splitlines()]
            # A heading or a list item on its own line ends a sentence.
            joined = " ".join(line for line in lines if line)
            if not joined:
                continue
            for part in _SENTENCE_END.split(joined):
                part = part.strip()
                if part:
                    out.append(part)
    return out


def rank(texts: list[tuple[str, str]]) -> list[Sentence]:
    """All usable sentences of the material (`(text, mime)` per item), scored; in material order."""
    sentences: list[Sentence] = []
    for source, (text, mime) in enumerate(texts):
        if not text.strip():
            continue
        for position, s in enumerate(sentences_of(text, mime)):
            words = len(s.split())
            if words < MIN_WORDS:
                continue
            if words > MAX_WORDS_PER_SENTENCE:  # a run-on (a table, a code line): keep its head
                s = " ".join(s.split()[:MAX_WORDS_PER_SENTENCE]) + " …"
                words = MAX_WORDS_PER_SENTENCE
            sentences.append(Sentence(source, position, s, frozenset(_terms(s)), words))
    if not sentences:
        return []
    tf: Counter[str] = Counter()
    df: Counter[str] = Counter()
    for s in sentences:
        df.update(s.terms)
        tf.update(_terms(s.text))
    n = len(sentences)
    weight = {t: (1 + math.log(c)) * math.log(1 + n / df[t]) for t, c in tf.items()}
    for s in sentences:
        if s.terms:
            s.score = sum(weight[t] for t in s.terms) / math.sqrt(len(s.terms) + 4)
            s.score *= 1.0 + 0.3 / (1 + s.position)
    return sentences


def _similar(a: Sentence, b: Sentence) -> bool:
    if not a.terms or not b.terms:
        return a.text == b.text
    return len(a.terms & b.terms) / len(a.terms | b.terms) > 0.6


def select(sentences: list[Sentence], max_words: int, *, per_source: int | None = None) -> list[Sentence]:
    """The best sentences within `max_words` (at least one), no near duplicates, at most `per_source` from one
    item; returned in material order."""
    chosen: list[Sentence] = []
    used = 0
    counts: Counter[int] = Counter()
    for s in sorted(sentences, key=lambda s: (-s.score, s.source, s.position)):
        if chosen and used + s.words > max_words:
            continue
        if per_source is not None and counts[s.source] >= per_source:
            continue
        if any(_similar(s, c) for c in chosen):
            continue
        chosen.append(s)
        counts[s.source] += 1
        used += s.words
        if used >= max_words:
            break
    return sorted(chosen, key=lambda s: (s.source, s.position))
