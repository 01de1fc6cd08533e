"""HTML: visible text (tags dropped, entities decoded, whitespace collapsed), chunked as prose, each chunk
mapped back to the source range it came from."""

from __future__ import annotations

import bisect
import html
import re
from html.parser import HTMLParser

from artifact_mcp.storage.index.chunking.packing import finish
from artifact_mcp.storage.index.chunking.prose import prose_ranges
from artifact_mcp.storage.index.chunking.spans import ChunkingConfig, ChunkSpan, Span

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


def split_html(source: str, config: ChunkingConfig) -> list[ChunkSpan]:
    parser = _HtmlText(source)
    parser.feed(source)
    parser.close()
    text = "".join(parser.pieces)
    ranges = [Span(s, e) for s, e in prose_ranges(text, 0, len(text), config)]
    spans: list[ChunkSpan] = []
    text_start = 0
    for sp in finish(text, ranges, config.chunk_size):
        start, end = parser.source_start(sp.start), parser.source_end(sp.end - 1)
        if spans and start <= spans[-1].start:
            # Cut inside one entity that decodes to several characters: both map to the same source.
            start, end, sp.start = spans[-1].start, max(end, spans.pop().end), text_start
        spans.append(ChunkSpan(text[sp.start : sp.end], start, end))
        text_start = sp.start
    return spans
