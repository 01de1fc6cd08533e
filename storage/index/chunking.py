"""Split an artifact's text into chunks for indexing, choosing a LlamaIndex node parser by mime type.

`split()` is a pure function of its arguments. Every `ChunkSpan` carries offsets into the text it was
given, so a hit can be shown in place:

* For every type but HTML, ``span.text.endswith(text[span.start:span.end])``: the chunk's own span of
  the source, exactly, possibly preceded by context (markdown: the enclosing headings; JSON: the JSON
  path of the members, like ``$.results[3:6]:``).
* For HTML, ``span.text`` is extracted text (tags dropped, entities decoded, whitespace collapsed);
  ``text[span.start:span.end]`` runs from the source of its first character to the source of its last.

Spans come in strictly increasing ``start`` order, are non-empty and together cover every
non-whitespace character of the source (of the extracted text, for HTML). LlamaIndex is imported on
first use only: it takes about a second to import.
"""

from __future__ import annotations

import bisect
import html
import io
import itertools
import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    text: str  # the text to embed / index for this chunk
    start: int  # character offset into the source text given to split()
    end: int  # exclusive end offset into the source text


@dataclass(frozen=True)
class ChunkingConfig:
    chunk_size: int = 512  # tokens, counted with LlamaIndex's default tokenizer (tiktoken)
    chunk_overlap: int = 64  # tokens; prose only: code and JSON chunks never overlap

    def __post_init__(self) -> None:
        if self.chunk_size < 1 or not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError(f"need chunk_size >= 1 and 0 <= chunk_overlap < chunk_size, got {self}")


DEFAULT_CONFIG = ChunkingConfig()


def split(
    text: str, mime_type: str, file_name: str | None = None, config: ChunkingConfig = DEFAULT_CONFIG
) -> list[ChunkSpan]:
    """Chunks of `text`, parsed as `mime_type` (the file name's extension decides when the mime does not)."""
    if not text.strip():
        return []
    kind = _kind(mime_type, file_name)
    if kind == "html":
        return _split_html(text, config)
    spans: list[_Span] | None = None
    if kind == "markdown":
        spans = _split_markdown(text, config)
    elif kind in ("json", "ndjson"):
        spans = _split_json(text, config, ndjson=kind == "ndjson")
    elif kind.startswith("code"):
        spans = _split_code(text, kind.partition(":")[2], config)
    if spans is None:  # plain text, or a structured parse that failed
        spans = [_Span(s, e) for s, e in _prose_ranges(text, 0, len(text), config)]
    return [
        ChunkSpan(sp.prefix + text[sp.start : sp.end], sp.start, sp.end)
        for sp in _finish(text, spans, config.chunk_size)
    ]


def extract_pdf_text(data: bytes) -> str:
    """The text of a PDF, pages separated by a blank line. ValueError for a broken or encrypted PDF."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        # An owner-password-only PDF opens with the empty user password; anything else we cannot read.
        if reader.is_encrypted and not reader.decrypt(""):
            raise ValueError("PDF is encrypted with a password; cannot extract its text")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except ValueError:
        raise
    except Exception as exc:  # pypdf raises many unrelated types for malformed input
        raise ValueError(f"cannot read PDF: {type(exc).__name__}: {exc}") from exc
    return "\n\n".join(pages)


# --- type detection ------------------------------------------------------------------------------------

_MIME_KINDS = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
    "application/pdf": "text",  # split() gets the text extract_pdf_text() made, whatever the file is called
    "text/x-python": "code:python",
    "text/x-script.python": "code:python",
    "application/x-python": "code:python",
    "text/javascript": "code:javascript",
    "application/javascript": "code:javascript",
    "application/x-javascript": "code:javascript",
    "text/x-typescript": "code:typescript",
    "text/typescript": "code:typescript",
    "application/typescript": "code:typescript",
    "text/x-go": "code:go",
    "text/x-rust": "code:rust",
    "text/x-java": "code:java",
    "text/x-java-source": "code:java",
    "text/x-c": "code:c",
    "text/x-csrc": "code:c",
    "text/x-chdr": "code:c",
    "text/x-c++": "code:cpp",
    "text/x-c++src": "code:cpp",
    "text/x-c++hdr": "code:cpp",
    "text/x-ruby": "code:ruby",
    "application/x-ruby": "code:ruby",
    "text/x-shellscript": "code:bash",
    "text/x-sh": "code:bash",
    "application/x-sh": "code:bash",
    "application/sql": "code:sql",
    "text/x-sql": "code:sql",
}

_EXT_KINDS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".json": "json",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".py": "code:python",
    ".pyi": "code:python",
    ".js": "code:javascript",
    ".mjs": "code:javascript",
    ".cjs": "code:javascript",
    ".jsx": "code:javascript",
    ".ts": "code:typescript",
    ".mts": "code:typescript",
    ".tsx": "code:tsx",
    ".go": "code:go",
    ".rs": "code:rust",
    ".java": "code:java",
    ".c": "code:c",
    ".h": "code:c",
    ".cc": "code:cpp",
    ".cpp": "code:cpp",
    ".cxx": "code:cpp",
    ".hpp": "code:cpp",
    ".hh": "code:cpp",
    ".rb": "code:ruby",
    ".sh": "code:bash",
    ".bash": "code:bash",
    ".sql": "code:sql",
    # No grammar shipped for these: split by blocks and lines, never inside an identifier.
    ".kt": "code:",
    ".swift": "code:",
    ".php": "code:",
    ".cs": "code:",
    ".scala": "code:",
    ".lua": "code:",
}


def _kind(mime_type: str, file_name: str | None) -> str:
    mime = mime_type.partition(";")[0].strip().lower()
    ext = PurePosixPath(file_name).suffix.lower() if file_name else ""
    kind = _MIME_KINDS.get(mime) or ("json" if mime.endswith("+json") else None)
    by_ext = _EXT_KINDS.get(ext)
    if kind is None:
        return by_ext or "text"
    # The extension is more specific within code (.tsx under text/x-typescript, .h under text/x-c).
    if kind.startswith("code") and by_ext and by_ext.startswith("code:"):
        return by_ext
    return kind


# --- shared machinery ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Span:
    start: int
    end: int
    prefix: str = ""


@cache
def _tokenizer() -> Callable[[str], list[int]]:
    # LlamaIndex points tiktoken at the encoding cached inside llama-index-core: nothing is downloaded.
    from llama_index.core.utils import get_tokenizer

    return get_tokenizer()


def _tokens(text: str) -> int:
    return len(_tokenizer()(text))


def _size(text: str, budget: int) -> int:
    """Token count of `text`, or just `budget + 1` for text far too long to fit.

    Tokenizing is superlinear on a long run without spaces (1 MB of base64 or CJK takes seconds),
    and an exact count is useless there: the text gets cut anyway.
    """
    return budget + 1 if len(text) > 16 * budget else _tokens(text)


def _fits(text: str, budget: int) -> bool:
    # An ASCII character is never more than one token, so short ASCII text needs no tokenizing.
    return (len(text) <= budget and text.isascii()) or _size(text, budget) <= budget


# Where SentenceSplitter cuts a sentence too long for a chunk: its own default (after , . ; and the
# CJK full stop, question and exclamation marks) plus line breaks, so that hard-wrapped text with no
# spaces (base64, hex dumps) is cut per line rather than per character, a tokenizer call each.
_BREAKERS = ",.;\u3002\uff1f\uff01"
_SUB_SENTENCE = f"[^{_BREAKERS}\n]+[{_BREAKERS}\n]?|[{_BREAKERS}\n]"


@lru_cache(maxsize=8)
def _sentence_splitter(config: ChunkingConfig) -> Any:
    from llama_index.core.node_parser import SentenceSplitter

    return SentenceSplitter(
        chunk_size=config.chunk_size, chunk_overlap=config.chunk_overlap, secondary_chunking_regex=_SUB_SENTENCE
    )


_NON_SPACE = re.compile(r"\S")


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    m = _NON_SPACE.search(text, start, end)
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


def _locate_all(text: str, chunks: Sequence[str], lo: int, hi: int) -> list[tuple[int, int] | None]:
    """Offsets of successive chunks of text[lo:hi], each overlapping or following the one before (None: not found)."""
    out: list[tuple[int, int] | None] = []
    prev_start, prev_end = lo - 1, lo
    for chunk in chunks:
        after = _NON_SPACE.search(text, prev_end, hi)
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
_TEXT_LEVELS = (_PARAGRAPHS, _LINES, _WORDS)
_CODE_LEVELS = (_PARAGRAPHS, _LINES, _IDENTIFIERS)


def _pack(text: str, lo: int, hi: int, budget: int, levels: Sequence[re.Pattern[str]]) -> list[tuple[int, int]]:
    """Greedily pack text[lo:hi] into ranges of at most `budget` tokens, cutting only at `levels` boundaries.

    A piece with no boundary left is cut into windows of at most `budget` tokens: that only happens
    to a run of word characters thousands long, which is data, not an identifier.
    """
    if not levels:
        windows = []
        while lo < hi:
            end = min(lo + budget, hi)
            while end - lo > 1 and not _fits(text[lo:end], budget):
                end = lo + (end - lo) // 2
            windows.append((lo, end))
            lo = end
        return windows
    cuts = sorted({lo, hi, *(m.end() for m in levels[0].finditer(text, lo, hi) if lo < m.end() < hi)})
    out: list[tuple[int, int]] = []
    cur_start, cur_end, cur_tokens = -1, -1, 0
    for a, b in itertools.pairwise(cuts):
        n = _size(text[a:b], budget)
        if n > budget:
            if cur_start >= 0:
                out.append((cur_start, cur_end))
                cur_start = -1
            out.extend(_pack(text, a, b, budget, levels[1:]))
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


def _defeats_sentence_splitter(text: str, length: int) -> bool:
    """Whether SentenceSplitter would have to cut `text` one character (or one word) at a time.

    True for `length` characters in a row with no space or sentence mark (it cuts those per
    character: a tokenizer call each), and for text averaging `length` characters between sentence
    marks and newlines (it cuts those per word: 10 s for 5 MB).
    """
    marks = text.count("\n") + sum(text.count(c) for c in _BREAKERS)
    if marks * length < len(text):
        return True
    if max(map(len, text.split()), default=0) < length:  # the usual answer, found 2x faster than a regex
        return False
    return re.search(f"[^\\s{_BREAKERS}]{{{length}}}", text) is not None


def _prose_ranges(text: str, lo: int, hi: int, config: ChunkingConfig, context: str = "") -> list[tuple[int, int]]:
    """SentenceSplitter over text[lo:hi] (room left for `context` in each chunk), located back in `text`."""
    region = text[lo:hi]
    if _fits(region, config.chunk_size - (_tokens(context) if context else 0)):
        found = _trim(text, lo, hi)
        return [found] if found else []
    splitter = _sentence_splitter(config)
    if not _defeats_sentence_splitter(region, 8 * config.chunk_size):
        try:
            if context and config.chunk_size - _tokens(context) >= max(50, config.chunk_overlap + 1):
                chunks = splitter.split_text_metadata_aware(region, context)
            else:
                chunks = splitter.split_text(region)
            ranges = [loc for loc in _locate_all(text, chunks, lo, hi) if loc]
            # Its last resort splits a run without spaces (words joined by tabs, say) per character, which can
            # cut a word in two; then pack by whitespace instead.
            if not any(_cuts_word(text, a) or _cuts_word(text, b) for a, b in ranges):
                return ranges
            log.debug("SentenceSplitter cut inside a word; packing by whitespace")
        except ValueError:  # "Single token exceeded chunk size": a tiny chunk_size
            log.debug("SentenceSplitter gave up; packing by whitespace", exc_info=True)
    return _pack(text, lo, hi, config.chunk_size, _TEXT_LEVELS)


def _cuts_word(text: str, i: int) -> bool:
    return 0 < i < len(text) and not text[i - 1].isspace() and not text[i].isspace()


def _finish(text: str, spans: list[_Span], budget: int) -> list[_Span]:
    """Trim, order and de-duplicate spans, then add a span for any text no parser accounted for."""
    trimmed: list[_Span] = []
    for sp in spans:
        found = _trim(text, max(sp.start, 0), min(sp.end, len(text)))
        if found:
            trimmed.append(_Span(*found, sp.prefix))
    trimmed.sort(key=lambda sp: (sp.start, -sp.end))
    out: list[_Span] = []
    covered = 0
    for sp in trimmed:
        if out and sp.end <= out[-1].end:
            continue  # inside the previous span: adds nothing
        if sp.start > covered and _NON_SPACE.search(text, covered, sp.start):
            out.extend(_Span(s, e) for s, e in _gap(text, covered, sp.start, budget))
        out.append(sp)
        covered = sp.end
    if _NON_SPACE.search(text, covered):
        out.extend(_Span(s, e) for s, e in _gap(text, covered, len(text), budget))
    return out


def _gap(text: str, lo: int, hi: int, budget: int) -> list[tuple[int, int]]:
    log.debug("chunker skipped text at %d:%d; adding it back", lo, hi)
    return [r for s, e in _pack(text, lo, hi, budget, _TEXT_LEVELS) if (r := _trim(text, s, e))]


# --- markdown ------------------------------------------------------------------------------------------

_HEADING = re.compile(r"^(#+)\s(.*)")


@cache
def _markdown_parser() -> Any:
    from llama_index.core.node_parser import MarkdownNodeParser
    from llama_index.core.schema import TextNode

    class _Parser(MarkdownNodeParser):
        # The stock node builder hashes the whole document once per section: quadratic in the input.
        def _build_node_from_split(self, text_split: str, node: Any, header_path: str) -> TextNode:
            return TextNode(text=text_split)

    return _Parser(include_metadata=False, include_prev_next_rel=False)


def _split_markdown(text: str, config: ChunkingConfig) -> list[_Span]:
    from llama_index.core.schema import Document

    sections = _markdown_parser().get_nodes_from_node(Document(text=text))
    spans: list[_Span] = []
    headings: list[tuple[int, str]] = []  # the open heading of each level, as the parser tracks them
    texts = [node.text for node in sections]
    for section, loc in zip(texts, _locate_all(text, texts, 0, len(text)), strict=True):
        if loc is None:
            continue
        start, end = loc
        first_line = section.partition("\n")[0]
        own = ""
        if m := _HEADING.match(first_line):
            level = len(m.group(1))
            while headings and headings[-1][0] >= level:
                headings.pop()
            own = first_line.strip()
            outer = "".join(h + "\n" for _, h in headings)
            headings.append((level, own))
        else:
            outer = "".join(h + "\n" for _, h in headings)
        # A section's first chunk starts with its own heading; later chunks repeat it as context.
        outer_ctx = outer + "\n" if outer else ""
        inner_ctx = outer + own + "\n\n" if own else outer_ctx
        for i, (s, e) in enumerate(_prose_ranges(text, start, end, config, inner_ctx)):
            spans.append(_Span(s, e, outer_ctx if i == 0 and s == start else inner_ctx))
    return spans


# --- source code ---------------------------------------------------------------------------------------

# language -> (module of the grammar wheel, function returning its language pointer)
_GRAMMARS = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "bash": ("tree_sitter_bash", "language"),
    "sql": ("tree_sitter_sql", "language"),
}

# A tree-sitter Parser is not meant for concurrent use, and splitters are shared.
_code_lock = threading.Lock()


@lru_cache(maxsize=32)
def _code_splitter(language: str, config: ChunkingConfig) -> Any | None:
    """CodeSplitter over a grammar wheel, or None when no grammar for `language` is installed.

    Not tree_sitter_language_pack: it downloads grammars at run time.
    """
    if language not in _GRAMMARS:
        return None
    module_name, function = _GRAMMARS[language]
    try:
        import importlib

        from tree_sitter import Language, Parser

        parser = Parser(Language(getattr(importlib.import_module(module_name), function)()))
    except Exception:  # missing wheel, or a grammar ABI this tree-sitter cannot load
        log.info("no tree-sitter grammar for %s; splitting it by blocks and lines", language, exc_info=True)
        return None

    from llama_index.core.node_parser import CodeSplitter

    class _Splitter(CodeSplitter):
        def _chunk_node(self, node: Any, text_bytes: bytes, last_end: int = 0) -> list[str]:
            # CodeSplitter's walk, but summing each child's token count instead of re-tokenizing
            # the growing chunk for every child: that made a 3 MB file take 20 s instead of 4.
            chunks: list[str] = []
            current, current_size = "", 0
            for child in node.children:
                piece = text_bytes[last_end : child.end_byte].decode("utf-8")
                size = _size(piece, self.max_tokens)
                if size > self.max_tokens:
                    if current:
                        chunks.append(current)
                    current, current_size = "", 0
                    if child.children:
                        chunks.extend(self._chunk_node(child, text_bytes, last_end))
                    else:
                        chunks.extend(self._split_oversized_leaf(piece, self.max_tokens))
                elif current_size + size > self.max_tokens:
                    if current:
                        chunks.append(current)
                    current, current_size = piece, size
                else:
                    current, current_size = current + piece, current_size + size
                last_end = child.end_byte
            if current:
                chunks.append(current)
            return chunks

        def _split_oversized_leaf(self, text: str, max_size: int) -> list[str]:
            # The stock version re-tokenizes a growing string once per character, and cuts anywhere.
            return [text[s:e] for s, e in _pack(text, 0, len(text), max_size, _CODE_LEVELS)]

    return _Splitter(
        language=language, parser=parser, count_mode="token", max_tokens=config.chunk_size, tokenizer=_tokenizer()
    )


def _split_code(text: str, language: str, config: ChunkingConfig) -> list[_Span]:
    splitter = _code_splitter(language, config)
    if splitter is not None:
        try:
            with _code_lock:
                chunks = splitter.split_text(text)
            return [_Span(*loc) for loc in _locate_all(text, [c for c in chunks if c], 0, len(text)) if loc]
        except (ValueError, RecursionError):  # unparseable, or a syntax tree deeper than Python's stack
            log.debug("tree-sitter could not parse %s; splitting by blocks and lines", language, exc_info=True)
    return [_Span(s, e) for s, e in _pack(text, 0, len(text), config.chunk_size, _CODE_LEVELS)]


# --- JSON ----------------------------------------------------------------------------------------------

_decoder = json.JSONDecoder()
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_Path = tuple[str | int, ...]


@dataclass(slots=True)
class _Atom:
    start: int
    end: int
    path: _Path
    tokens: int


def _skip_space(text: str, i: int) -> int:
    m = _JSON_SPACE.match(text, i)
    return m.end() if m else i


def _members(text: str, i: int) -> list[tuple[int, int, int, str | int]]:
    """(member start, value start, value end, key or index) of the container at text[i], known valid JSON."""
    close = "}" if text[i] == "{" else "]"
    j = _skip_space(text, i + 1)
    out: list[tuple[int, int, int, str | int]] = []
    while text[j] != close:
        member_start = j
        key: str | int = len(out)
        if close == "}":
            key, j = _decoder.raw_decode(text, j)
            j = _skip_space(text, _skip_space(text, j) + 1)  # past the colon
        value_start = j
        _, j = _decoder.raw_decode(text, j)
        out.append((member_start, value_start, j, key))
        j = _skip_space(text, j)
        if text[j] == ",":
            j = _skip_space(text, j + 1)
    return out


def _json_atoms(text: str, lo: int, hi: int, value_start: int, path: _Path, budget: int, out: list[_Atom]) -> None:
    """Atoms partitioning text[lo:hi], a region holding one value: whole if it fits, else per member.

    The region's own key, brackets and commas ride along with its first and last members, so that
    chunks stay contiguous and no byte of the source is left out.
    """
    size = _size(text[lo:hi], budget)
    members = _members(text, value_start) if size > budget and text[value_start] in "{[" else []
    if not members:
        out.append(_Atom(lo, hi, path, size))
        return
    starts = [lo] + [m[0] for m in members[1:]]
    ends = [*starts[1:], hi]
    for (_, member_value, _, key), a, b in zip(members, starts, ends, strict=True):
        _json_atoms(text, a, b, member_value, (*path, key), budget, out)


def _json_path(path: _Path) -> str:
    parts = ["$"]
    for key in path:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif _PLAIN_KEY.fullmatch(key):
            parts.append(f".{key}")
        else:
            parts.append(f"[{json.dumps(key, ensure_ascii=False)}]")
    return "".join(parts)


def _group_path(paths: Sequence[_Path]) -> str:
    """One label for consecutive members: `$.results[3]`, `$.results[3:6]`, `$.results[38:40], $.meta`."""
    runs: list[list[_Path]] = []
    for path in paths:
        if runs and runs[-1][0][:-1] == path[:-1]:
            runs[-1].append(path)
        else:
            runs.append([path])
    labels = []
    for run in runs:
        first, last = run[0], run[-1]
        if len(run) == 1:
            labels.append(_json_path(first))
        elif isinstance(first[-1], int) and isinstance(last[-1], int):
            labels.append(f"{_json_path(first[:-1])}[{first[-1]}:{last[-1] + 1}]")
        else:  # several keys of one object: the keys are in the text
            labels.append(_json_path(first[:-1]))
    if len(labels) > 3:  # members scattered over many containers: name what they share
        common = list(paths[0])
        for path in paths[1:]:
            shared = 0
            while shared < min(len(common), len(path)) and common[shared] == path[shared]:
                shared += 1
            del common[shared:]
        return _json_path(tuple(common))
    return ", ".join(labels)


def _json_atoms_of(text: str, budget: int) -> list[_Atom]:
    json.loads(text)  # validates: the walk below assumes well-formed JSON
    atoms: list[_Atom] = []
    _json_atoms(text, 0, len(text), _skip_space(text, 0), (), budget, atoms)
    return atoms


def _ndjson_atoms(text: str, budget: int) -> list[_Atom]:
    """Atoms of NDJSON: whole lines, split structurally only when one alone is too big.

    Line i is addressed as $[i], as if the file were one array.
    """
    atoms: list[_Atom] = []
    lines = [m for m in re.finditer(r"[^\n]*\n?", text) if m.group().strip()]
    for i, m in enumerate(lines):
        lo = 0 if i == 0 else m.start()
        hi = lines[i + 1].start() if i + 1 < len(lines) else len(text)
        value_start, value_end = _trim(text, m.start(), m.end()) or (lo, hi)
        if not _fits(text[lo:hi], budget):
            try:
                json.loads(text[value_start:value_end])
            except ValueError:  # not JSON: one oversized atom, split as prose
                atoms.append(_Atom(lo, hi, (i,), budget + 1))
                continue
        _json_atoms(text, lo, hi, value_start, (i,), budget, atoms)
    return atoms


def _split_json(text: str, config: ChunkingConfig, ndjson: bool) -> list[_Span] | None:
    budget = config.chunk_size
    try:
        atoms = _ndjson_atoms(text, budget) if ndjson else _json_atoms_of(text, budget)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's stack
        return None
    spans: list[_Span] = []
    group: list[_Atom] = []

    def flush() -> None:
        if group:
            path = _group_path([a.path for a in group])
            spans.append(_Span(group[0].start, group[-1].end, "" if path == "$" else path + ":\n"))
            group.clear()

    total = 0
    for atom in atoms:
        if atom.tokens > budget:  # a scalar (long string) or a non-JSON line too big to keep whole
            flush()
            path = _json_path(atom.path)
            prefix = "" if path == "$" else path + ":\n"
            ranges = _prose_ranges(text, atom.start, atom.end, config, prefix)
            spans.extend(_Span(s, e, prefix) for s, e in ranges)
            continue
        if group and total + atom.tokens > budget:
            flush()
        if not group:
            total = 0
        group.append(atom)
        total += atom.tokens
    flush()
    return spans


# --- HTML ----------------------------------------------------------------------------------------------

_SKIP_TAGS = frozenset({"script", "style", "template"})
_LINE_TAGS = frozenset({"br", "li", "tr", "dt", "dd", "option", "caption"})
_CELL_TAGS = frozenset({"td", "th"})
_BLOCK_TAGS = frozenset(
    (  # noqa: SIM905 - a word list reads better than 36 quoted strings
        "address article aside blockquote body dl div fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 "
        "head header hr html main nav ol p pre section table tbody thead tfoot title ul"
    ).split()
)
_ENTITY = re.compile(r"&(?:#[xX][0-9a-fA-F]+|#[0-9]+|[a-zA-Z][-.a-zA-Z0-9]*);?")
_COLLAPSIBLE = re.compile(r"\s{2,}|[^\S ]")


class _HtmlText(HTMLParser):
    """Visible text of an HTML document, with a map from every text offset back to the source.

    The map is a list of segments: a *linear* one copies source characters one to one; any other
    (a decoded entity, a collapsed whitespace run, a line break for a block tag) stands for a whole
    source range.
    """

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=False)  # entities come separately, with their positions
        self._source = source
        self._line_starts = [0, *(m.end() for m in re.finditer("\n", source))]
        self.pieces: list[str] = []
        self.text_starts: list[int] = []
        self.src_starts: list[int] = []
        self.src_ends: list[int] = []
        self.linear: list[bool] = []
        self._length = 0
        self._skip = 0
        self._pre = 0
        self._last = "\n"  # as if after a break, so leading whitespace is dropped

    def _pos(self) -> int:
        line, col = self.getpos()
        return self._line_starts[line - 1] + col

    def _emit(self, piece: str, src_start: int, src_end: int, linear: bool) -> None:
        self.pieces.append(piece)
        self.text_starts.append(self._length)
        self.src_starts.append(src_start)
        self.src_ends.append(src_end)
        self.linear.append(linear)
        self._length += len(piece)
        self._last = piece[-1]

    def _space(self, src_start: int, src_end: int) -> None:
        if not self._last.isspace():
            self._emit(" ", src_start, src_end, False)

    def _break(self, newlines: int) -> None:
        if self._last == " " and not self._pre:  # a space right before a break is noise
            self._drop_last_char()
        trailing = 0
        for piece in reversed(self.pieces):
            stripped = len(piece) - len(piece.rstrip("\n"))
            trailing += stripped
            if stripped < len(piece) or trailing >= newlines:
                break
        if self.pieces and trailing < newlines:
            at = self._pos()
            self._emit("\n" * (newlines - trailing), at, at, False)

    def _drop_last_char(self) -> None:
        self._length -= 1
        if len(self.pieces[-1]) > 1:
            self.pieces[-1] = self.pieces[-1][:-1]
            if self.linear[-1]:
                self.src_ends[-1] -= 1
        else:
            for column in (self.pieces, self.text_starts, self.src_starts, self.src_ends, self.linear):
                column.pop()
        self._last = self.pieces[-1][-1] if self.pieces else "\n"

    def _tag(self, tag: str, closing: bool) -> None:
        if tag in _BLOCK_TAGS:
            self._break(2)
        elif tag in _LINE_TAGS:
            self._break(1)
        elif tag in _CELL_TAGS and not closing:
            self._space(self._pos(), self._pos())
        if tag == "pre":
            self._pre = max(0, self._pre + (-1 if closing else 1))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip += 1
        elif not self._skip:
            self._tag(tag, closing=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._skip and tag not in _SKIP_TAGS:
            self._tag(tag, closing=False)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip = max(0, self._skip - 1)
        elif not self._skip:
            self._tag(tag, closing=True)

    def handle_data(self, data: str) -> None:
        if self._skip or not data:
            return
        at = self._pos()
        # Entities normally arrive through handle_entityref, but newer Pythons pass those in
        # <title> and <textarea> as data.
        i = 0
        for m in _ENTITY.finditer(data):
            self._text(data[i : m.start()], at + i)
            self._entity(m.group(), at + m.start())
            i = m.end()
        self._text(data[i:], at + i)

    def _text(self, data: str, at: int) -> None:
        if self._pre:
            if data:
                self._emit(data, at, at + len(data), True)
            return
        i = 0
        # Copy verbatim between the whitespace runs that collapse to one space.
        for m in _COLLAPSIBLE.finditer(data):
            self._verbatim(data, i, m.start(), at)
            self._space(at + m.start(), at + m.end())
            i = m.end()
        self._verbatim(data, i, len(data), at)

    def _verbatim(self, data: str, i: int, j: int, at: int) -> None:
        if i < j and data[i] == " " and self._last.isspace():
            i += 1
        if i < j:
            self._emit(data[i:j], at + i, at + j, True)

    def _reference(self) -> None:
        if not self._skip:
            at = self._pos()
            m = _ENTITY.match(self._source, at)
            self._entity(m.group() if m else "&", at)

    def _entity(self, raw: str, at: int) -> None:
        decoded = html.unescape(raw)
        if decoded.isspace():
            self._space(at, at + len(raw))
        else:  # an unknown entity stays as written, character for character
            self._emit(decoded, at, at + len(raw), decoded == raw)

    def handle_entityref(self, name: str) -> None:
        self._reference()

    def handle_charref(self, name: str) -> None:
        self._reference()

    def source_start(self, i: int) -> int:
        k = bisect.bisect_right(self.text_starts, i) - 1
        return self.src_starts[k] + (i - self.text_starts[k] if self.linear[k] else 0)

    def source_end(self, i: int) -> int:
        """Source offset just after text character i."""
        k = bisect.bisect_right(self.text_starts, i) - 1
        return self.src_starts[k] + i - self.text_starts[k] + 1 if self.linear[k] else self.src_ends[k]


def _split_html(source: str, config: ChunkingConfig) -> list[ChunkSpan]:
    parser = _HtmlText(source)
    parser.feed(source)
    parser.close()
    text = "".join(parser.pieces)
    ranges = [_Span(s, e) for s, e in _prose_ranges(text, 0, len(text), config)]
    spans: list[ChunkSpan] = []
    text_start = 0
    for sp in _finish(text, ranges, config.chunk_size):
        start, end = parser.source_start(sp.start), parser.source_end(sp.end - 1)
        if spans and start <= spans[-1].start:
            # Cut inside one entity that decodes to several characters: both map to the same source.
            start, end, sp.start = spans[-1].start, max(end, spans.pop().end), text_start
        spans.append(ChunkSpan(text[sp.start : sp.end], start, end))
        text_start = sp.start
    return spans
