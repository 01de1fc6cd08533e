"""Composing the document (title, sections, citations) from the material and, when the client's model wrote
the text, its draft. Every section that states something cites the artifact ids it came from."""

from __future__ import annotations

import re
from datetime import datetime

from markdown_it import MarkdownIt

from artifact_mcp.storage.generate import extractive
from artifact_mcp.storage.generate.models import (
    Block,
    Citation,
    Document,
    Draft,
    GenerateRequest,
    MaterialItem,
    Section,
    Writer,
)

_ID = re.compile(r"art_[0-9a-f]{32}")
_HEADING = re.compile(r"^(#{1,6})\s", re.MULTILINE)
_TEXT_MIMES = ("text/plain", "text/markdown")
_DIGEST_WORDS_PER_ITEM = 60


def default_title(req: GenerateRequest, items: list[MaterialItem]) -> str:
    if req.options.title:
        return req.options.title
    kind = req.document_type.capitalize()
    if req.thread_id:
        return f"{kind} of thread {req.thread_id}"
    if req.query and not req.artifact_ids:
        return f"{kind}: {req.query[:120]}"
    if len(items) == 1:
        return f"{kind} of {items[0].name}"
    return f"{kind} of {len(items)} artifacts"


def cite(ids: list[str]) -> str:
    return " ".join(f"[{i}]" for i in ids)


def _when(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M UTC")


def provenance_line(item: MaterialItem) -> str:
    parts = [_when(item.created_at), item.artifact_type, f"v{item.version}", item.artifact_id]
    if item.created_by:
        parts.append(f"by {item.created_by}")
    via = " / ".join(p for p in (item.source, item.source_tool) if p)
    if via:
        parts.append(f"via {via}")
    return " · ".join(parts)


def _text_blocks(text: str) -> list[Block]:
    """Paragraphs of a text artifact; its own markdown headings become headings one level below the transcript's
    per-artifact heading."""
    blocks: list[Block] = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines: list[str] = []
        for line in paragraph.strip().splitlines():
            m = _HEADING.match(line)
            if m:
                if lines:
                    blocks.append(Block(kind="paragraph", text="\n".join(lines)))
                    lines = []
                blocks.append(Block(kind="heading", text=line[m.end():].strip(), level=min(6, len(m.group(1)) + 2)))
            else:
                lines.append(line)
        if lines:
            blocks.append(Block(kind="paragraph", text="\n".join(lines)))
    return blocks


def transcript_sections(items: list[MaterialItem]) -> list[Section]:
    """The material in order, verbatim: one section per artifact with its name, time and provenance."""
    sections = []
    for n, item in enumerate(items, start=1):
        blocks = [Block(kind="meta", text=provenance_line(item))]
        base_mime = item.mime_type.split(";")[0].strip()
        if not item.text.strip():
            blocks.append(Block(kind="paragraph", text=f"(no text: {item.mime_type})"))
        elif base_mime in _TEXT_MIMES:
            blocks += _text_blocks(item.text)
        else:
            blocks.append(Block(kind="code", text=item.text))
        if item.truncated:
            blocks.append(Block(kind="meta", text="(content cut at the transcript's per-artifact limit)"))
        sections.append(Section(heading=f"{n}. {item.name}", blocks=blocks, citations=[item.artifact_id]))
    return sections


def _extractive_sections(req: GenerateRequest, items: list[MaterialItem]) -> list[Section]:
    ranked = extractive.rank([(i.text, i.mime_type) for i in items])
    budget = req.max_words
    if not ranked:
        # Nothing to rank (images, empty files): say what the material is rather than fail.
        return [Section(heading="Contents", blocks=[
            Block(kind="bullet", text=f"{i.name} ({i.artifact_type}, {i.mime_type}) {cite([i.artifact_id])}")
            for i in items
        ], citations=[i.artifact_id for i in items])]
    if req.document_type == "summary":
        chosen = extractive.select(ranked, budget)
        blocks, ids = [], []
        for source in dict.fromkeys(s.source for s in chosen):
            aid = items[source].artifact_id
            text = " ".join(s.text for s in chosen if s.source == source)
            blocks.append(Block(kind="paragraph", text=f"{text} {cite([aid])}"))
            ids.append(aid)
        return [Section(heading="Summary", blocks=blocks, citations=ids)]
    if req.document_type == "digest":
        per_item = max(20, min(_DIGEST_WORDS_PER_ITEM, budget // max(1, len(items))))
        blocks, ids = [], []
        for source, item in enumerate(items):
            best = extractive.select([s for s in ranked if s.source == source], per_item, per_source=2)
            if best:
                text = " ".join(s.text for s in best)
                blocks.append(Block(kind="bullet", text=f"**{item.name}** ({_when(item.created_at)}): {text} "
                                                        f"{cite([item.artifact_id])}"))
                ids.append(item.artifact_id)
        return [Section(heading="Highlights", blocks=blocks, citations=ids)]
    # report: an overview across the material, then one section per artifact
    overview = extractive.select(ranked, max(40, budget // 5), per_source=2)
    sections = [Section(
        heading="Overview",
        blocks=[Block(kind="bullet", text=f"{s.text} {cite([items[s.source].artifact_id])}") for s in overview],
        citations=list(dict.fromkeys(items[s.source].artifact_id for s in overview)),
    )]
    per_item = max(30, (budget - budget // 5) // max(1, len(items)))
    for source, item in enumerate(items):
        best = extractive.select([s for s in ranked if s.source == source], per_item)
        blocks = [Block(kind="meta", text=provenance_line(item))]
        if best:
            blocks.append(Block(kind="paragraph", text=" ".join(s.text for s in best) + f" {cite([item.artifact_id])}"))
        else:
            blocks.append(Block(kind="paragraph", text=f"(no text to summarize: {item.mime_type}) "
                                                       f"{cite([item.artifact_id])}"))
        sections.append(Section(heading=item.name, blocks=blocks, citations=[item.artifact_id]))
    return sections


_md = MarkdownIt("commonmark", {"html": False})


def draft_sections(draft: Draft, items: list[MaterialItem]) -> list[Section]:
    """Sections of the client model's markdown: split at its top headings. A section's citations are the
    material ids it mentions; a section that mentions none is attributed to the whole material (the model read
    all of it) and says so."""
    known = {i.artifact_id for i in items}
    sections: list[Section] = []
    current = Section(heading="Summary")
    top = None
    tokens = _md.parse(draft.text)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            level = int(tok.tag[1])
            text = tokens[i + 1].content.strip()
            if level == 1 and not sections and not current.blocks:
                i += 3  # the model's own title: ours replaces it
                continue
            if top is None:
                top = level
            if level <= top:
                if current.blocks:
                    sections.append(current)
                current = Section(heading=text)
            else:
                current.blocks.append(Block(kind="heading", text=text, level=3))
            i += 3
            continue
        if tok.type == "inline":
            parent = tokens[i - 1].type if i else ""
            if parent == "paragraph_open":
                in_list = any(t.type == "list_item_open" for t in tokens[max(0, i - 3):i])
                current.blocks.append(Block(kind="bullet" if in_list else "paragraph", text=tok.content.strip()))
        elif tok.type in ("fence", "code_block"):
            current.blocks.append(Block(kind="code", text=tok.content.rstrip("\n")))
        i += 1
    if current.blocks:
        sections.append(current)
    for section in sections:
        mentioned = list(dict.fromkeys(m for b in section.blocks for m in _ID.findall(b.text) if m in known))
        if mentioned:
            section.citations = mentioned
        else:
            section.citations = [item.artifact_id for item in items]
            section.blocks.append(Block(kind="meta", text="Sources: the whole material " +
                                        cite(section.citations)))
    return sections


def compose(req: GenerateRequest, items: list[MaterialItem], draft: Draft | None, now: datetime) -> Document:
    writer: Writer
    if req.document_type == "transcript":
        sections, writer = transcript_sections(items), "verbatim"
    elif draft is not None and draft.text.strip():
        sections, writer = draft_sections(draft, items), "client_model"
    else:
        sections, writer = _extractive_sections(req, items), "extractive"
    if req.options.include_transcript and req.document_type != "transcript":
        sections.append(Section(heading="Transcript", blocks=[], citations=[]))
        for s in transcript_sections(items):
            s.blocks.insert(0, Block(kind="heading", text=s.heading, level=3))
            sections[-1].blocks += s.blocks
            sections[-1].citations += s.citations
    citations = [Citation(artifact_id=i.artifact_id, name=i.name, version=i.version, created_at=i.created_at,
                          uri=f"artifact://{i.artifact_id}") for i in items]
    return Document(title=default_title(req, items), document_type=req.document_type, writer=writer,
                    generated_at=now, branding=req.options.branding, sections=sections, citations=citations)


def prompt(req: GenerateRequest, items: list[MaterialItem]) -> tuple[str, str]:
    """(system prompt, user message) asking the client's model to write the document from the material."""
    shape = {
        "summary": "a concise summary in prose (a few paragraphs)",
        "report": "a structured report: an '## Overview' section, then one '## ' section per main topic",
        "digest": "a digest: a bulleted list with one highlight per artifact",
    }[req.document_type]
    system = ("You write documents from the material given, and nothing else. Use Markdown with '## ' section "
              "headings. After every statement, cite the artifact ids it came from in square brackets, e.g. "
              "[art_0123...]. Do not invent facts or ids.")
    parts = [f"Write {shape} of about {req.max_words} words."]
    if req.options.title:
        parts.append(f"Title: {req.options.title}")
    parts.append("Material:")
    for item in items:
        parts.append(f"--- [{item.artifact_id}] {item.name} ({provenance_line(item)})\n{item.text or '(no text)'}")
    return system, "\n\n".join(parts)
