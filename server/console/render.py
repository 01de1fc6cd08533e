"""Artifact content as HTML the console can show safely: nothing an artifact holds can run script in the console.

Markdown (markdown-it-py) and HTML pass through nh3 (an allow-list sanitizer: no script, no event handlers, no
`javascript:` URLs); JSON becomes nested <details> (foldable without JavaScript); code is highlighted by Pygments;
diffs come from difflib. Every text is escaped before any markup is added around it. PDFs and images are never
inlined: the page points an <iframe>/<img> at the raw route, which serves them under a sandboxing CSP.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup, escape
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename, get_lexer_for_mimetype
from pygments.util import ClassNotFound

from artifact_mcp.storage.models import Artifact

_MD = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table").enable("strikethrough")
_FORMATTER = HtmlFormatter(cssclass="hl", wrapcode=True)
# Past this many JSON values the foldable tree is more page than anyone reads: pretty-printed text instead.
MAX_JSON_NODES = 5000
MAX_DIFF_LINES = 20000
_CODE_MIMES = ("application/javascript", "application/x-python", "application/x-sh", "application/xml",
               "application/x-yaml", "application/toml", "application/sql")


def pygments_css() -> str:
    return _FORMATTER.get_style_defs(".hl")


def sanitize(html: str) -> Markup:
    # nh3's defaults already drop <script>, <style>, on* attributes and non-http(s)/mailto URLs; images are kept
    # (the page's CSP lets them load from this origin only).
    return Markup(nh3.clean(html, link_rel="noopener noreferrer nofollow"))


def markdown(text: str) -> Markup:
    return sanitize(_MD.render(text))


def _json_node(value: Any, budget: list[int], key: str | None = None, depth: int = 0) -> str:
    budget[0] -= 1
    label = f'<span class="k">{escape(json.dumps(key))}</span>: ' if key is not None else ""
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        opener, closer = ("{", "}") if isinstance(value, dict) else ("[", "]")
        count = f'<span class="n">{len(value)} {"keys" if isinstance(value, dict) else "items"}</span>'
        inner = "".join(f"<li>{_json_node(v, budget, k if isinstance(value, dict) else None, depth + 1)}</li>"
                        for k, v in items)
        is_open = " open" if depth < 2 else ""
        return (f"<details{is_open}><summary>{label}{opener} {count}</summary><ul>{inner}</ul>{closer}</details>")
    return f'{label}<span class="v">{escape(json.dumps(value, ensure_ascii=False))}</span>'


def json_tree(value: Any) -> Markup:
    budget = [MAX_JSON_NODES]
    html = _json_node(value, budget)
    if budget[0] < 0:
        return Markup(f"<pre>{escape(json.dumps(value, indent=2, ensure_ascii=False))}</pre>")
    return Markup(f'<div class="json">{html}</div>')


def code(text: str, file_name: str | None, mime: str) -> Markup | None:
    try:
        lexer = get_lexer_for_filename(file_name) if file_name else get_lexer_for_mimetype(mime)
    except ClassNotFound:
        try:
            lexer = get_lexer_for_mimetype(mime)
        except ClassNotFound:
            return None
    if lexer.name == "Text only":
        return None
    return Markup(highlight(text, lexer, _FORMATTER))


@dataclass
class Rendered:
    kind: str  # markdown, html, json, code, text, pdf, image, binary
    body: Markup | None = None
    source: str | None = None  # HTML's escaped source, shown beside the sanitized rendering


def base_mime(mime: str) -> str:
    return mime.split(";")[0].strip().lower()


def render(art: Artifact) -> Rendered:
    mime = base_mime(art.mime_type)
    if mime == "application/pdf":
        return Rendered("pdf")
    if mime.startswith("image/"):
        return Rendered("image")
    if isinstance(art.content, dict | list) or (mime == "application/json" and _parses(art)):
        value = art.content if isinstance(art.content, dict | list) else json.loads(_text(art) or "null")
        return Rendered("json", json_tree(value))
    text = _text(art)
    if text is None:
        return Rendered("binary")
    name = (art.file_name or "").lower()
    if mime in ("text/markdown", "text/x-markdown") or art.format == "markdown" or name.endswith((".md", ".markdown")):
        return Rendered("markdown", markdown(text))
    if mime in ("text/html", "application/xhtml+xml") or art.format == "html":
        return Rendered("html", sanitize(text), text)
    if mime.startswith("text/x-") or mime in _CODE_MIMES or art.artifact_type == "code" or (
            art.file_name and "." in art.file_name and mime != "text/plain"):
        highlighted = code(text, art.file_name, mime)
        if highlighted is not None:
            return Rendered("code", highlighted)
    return Rendered("text", Markup(f"<pre>{escape(text)}</pre>"))


def _text(art: Artifact) -> str | None:
    if isinstance(art.content, str):
        return art.content
    return art.content_text


def _parses(art: Artifact) -> bool:
    try:
        json.loads(_text(art) or "")
    except ValueError:
        return False
    return True


def diff_text(art: Artifact) -> str | None:
    """A version's content as the text a diff compares (JSON pretty-printed, keys sorted)."""
    if isinstance(art.content, dict | list):
        return json.dumps(art.content, indent=2, sort_keys=True, ensure_ascii=False)
    return _text(art)


@dataclass
class DiffLine:
    kind: str  # add, del, ctx, hunk
    text: str


def diff(old: str, new: str, old_label: str, new_label: str) -> list[DiffLine]:
    lines: list[DiffLine] = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), old_label, new_label, n=3, lineterm=""):
        if len(lines) >= MAX_DIFF_LINES:
            lines.append(DiffLine("hunk", f"… diff cut at {MAX_DIFF_LINES} lines"))
            break
        if line.startswith(("+++", "---")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "ctx")
        lines.append(DiffLine(kind, line))
    return lines


_WORD = re.compile(r"\w{2,}", re.UNICODE)


def highlight_terms(text: str, query: str) -> Markup:
    """`text` escaped, with the query's words marked (<mark>), case-insensitively."""
    words = sorted({w.lower() for w in _WORD.findall(query)}, key=len, reverse=True)
    if not words:
        return Markup(escape(text))
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    out: list[str] = []
    pos = 0
    for match in pattern.finditer(text):
        out.append(str(escape(text[pos:match.start()])))
        out.append(f"<mark>{escape(match.group(0))}</mark>")
        pos = match.end()
    out.append(str(escape(text[pos:])))
    return Markup("".join(out))
