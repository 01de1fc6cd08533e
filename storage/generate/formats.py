"""One document, four formats. Markdown is the source; the stored text (for search) is always the Markdown."""

from __future__ import annotations

from artifact_mcp.storage.generate.html import render_html
from artifact_mcp.storage.generate.markdown import to_markdown
from artifact_mcp.storage.generate.models import Document, OutputFormat


def render(doc: Document, fmt: OutputFormat) -> tuple[bytes, str]:
    """(the file's bytes, the Markdown source)."""
    markdown = to_markdown(doc)
    if fmt == "markdown":
        return markdown.encode(), markdown
    if fmt == "html":
        return render_html(markdown, doc.title, doc.branding).encode(), markdown
    if fmt == "json":
        return doc.model_dump_json(indent=2).encode(), markdown
    # fpdf (0.4-0.6 s and ~20 MiB to import) only for a PDF: not on the path of every store's open.
    from artifact_mcp.storage.generate.pdf import render_pdf

    return render_pdf(doc), markdown
