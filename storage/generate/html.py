"""HTML rendered from the Markdown source with markdown-it (raw HTML in the material is escaped, never passed
through), in a self-contained page carrying the branding."""

from __future__ import annotations

from html import escape

from markdown_it import MarkdownIt

from artifact_mcp.storage.generate.models import Branding

BRANDS: dict[str, dict[str, str]] = {
    "light": {"bg": "#ffffff", "fg": "#1f2328", "accent": "#0b5cad", "muted": "#59636e", "code": "#f3f4f6",
              "rule": "#d1d9e0"},
    "dark": {"bg": "#0d1117", "fg": "#e6edf3", "accent": "#58a6ff", "muted": "#9198a1", "code": "#161b22",
             "rule": "#30363d"},
}

_md = MarkdownIt("commonmark", {"html": False}).enable("table")


def render_html(markdown: str, title: str, branding: Branding) -> str:
    c = BRANDS[branding]
    css = (
        f"body{{background:{c['bg']};color:{c['fg']};font:16px/1.55 system-ui,-apple-system,'Segoe UI',sans-serif;"
        f"max-width:52rem;margin:2rem auto;padding:0 1.25rem}}"
        f"h1,h2,h3{{color:{c['accent']};line-height:1.25}}h1{{border-bottom:3px solid {c['accent']};"
        f"padding-bottom:.3rem}}h2{{border-bottom:1px solid {c['rule']};padding-bottom:.2rem;margin-top:2rem}}"
        f"em{{color:{c['muted']}}}pre,code{{background:{c['code']};font-family:ui-monospace,monospace;"
        f"font-size:.9em}}pre{{padding:.75rem;overflow-x:auto;border-radius:6px}}a{{color:{c['accent']}}}"
    )
    body = _md.render(markdown)
    return (f'<!DOCTYPE html>\n<html lang="en" data-branding="{branding}">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{escape(title)}</title>\n'
            f"<style>{css}</style>\n</head>\n<body>\n{body}</body>\n</html>\n")
