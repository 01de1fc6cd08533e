"""The Markdown source of a document: what is indexed for search, and what HTML is rendered from."""

from __future__ import annotations

from artifact_mcp.storage.generate.compose import cite
from artifact_mcp.storage.generate.models import Block, Document

_KIND_LABEL = {"client_model": "written by the client's model", "extractive": "extractive summary",
               "verbatim": "transcript"}


def _fence(text: str) -> str:
    # A fence longer than any backtick run inside the text, so content cannot close it early.
    longest = max((len(run) for run in text.split("\n") if set(run) == {"`"}), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}\n{text}\n{ticks}"


def _block(block: Block) -> str:
    if block.kind == "bullet":
        return "- " + block.text.replace("\n", " ")
    if block.kind == "code":
        return _fence(block.text)
    if block.kind == "meta":
        return f"*{block.text}*"
    if block.kind == "heading":
        return f"{'#' * max(3, block.level)} {block.text}"
    return block.text


def to_markdown(doc: Document) -> str:
    lines = [f"# {doc.title}", "",
             f"*{doc.document_type.capitalize()} · generated {doc.generated_at:%Y-%m-%d %H:%M UTC} · "
             f"{_KIND_LABEL[doc.writer]} · {len(doc.citations)} source artifact(s)*", ""]
    for section in doc.sections:
        lines += [f"## {section.heading}", ""]
        previous = None
        for block in section.blocks:
            if previous == "bullet" and block.kind != "bullet":
                lines.append("")
            lines.append(_block(block))
            if block.kind != "bullet":
                lines.append("")
            previous = block.kind
        if previous == "bullet":
            lines.append("")
    lines += ["## Sources", ""]
    lines += [f"- {cite([c.artifact_id])} {c.name} (v{c.version}, {c.created_at:%Y-%m-%d %H:%M UTC})"
              for c in doc.citations]
    return "\n".join(lines).rstrip() + "\n"
