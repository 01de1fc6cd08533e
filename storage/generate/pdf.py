"""PDF rendered with fpdf2: title band, headings, paragraphs, bullets, code, "Page N of M" footers, branding.

Text is drawn with DejaVu Sans (Unicode) when the system has it (Debian/Ubuntu `fonts-dejavu-core`, most
desktops); otherwise with the PDF core fonts, which cover Latin-1 only: other characters become '?'.
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache

from fpdf import FPDF

from artifact_mcp.storage.generate.models import Block, Document

# fpdf2 subsets fonts with fontTools, which logs every table it touches at INFO.
logging.getLogger("fontTools").setLevel(logging.WARNING)

_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF",
              "/usr/local/share/fonts", "/Library/Fonts", os.path.expanduser("~/.fonts"))
_FONT_FILES = {"sans": "DejaVuSans.ttf", "sans-b": "DejaVuSans-Bold.ttf", "mono": "DejaVuSansMono.ttf"}

_RGB = tuple[int, int, int]
BRANDS: dict[str, dict[str, _RGB]] = {
    "light": {"bg": (255, 255, 255), "fg": (31, 35, 40), "accent": (11, 92, 173), "muted": (89, 99, 110),
              "code": (243, 244, 246), "band_fg": (255, 255, 255)},
    "dark": {"bg": (13, 17, 23), "fg": (230, 237, 243), "accent": (88, 166, 255), "muted": (145, 152, 161),
             "code": (22, 27, 34), "band_fg": (13, 17, 23)},
}


@lru_cache(maxsize=1)
def unicode_fonts() -> dict[str, str] | None:
    """Paths of the DejaVu fonts, or None when they are not installed."""
    override = os.environ.get("ARTIFACT_MCP_PDF_FONT_DIR")
    for directory in ((override,) if override else ()) + _FONT_DIRS:
        paths = {k: os.path.join(directory, f) for k, f in _FONT_FILES.items()}
        if all(os.path.isfile(p) for p in paths.values()):
            return paths
    return None


class _Pdf(FPDF):
    def __init__(self, colours: dict[str, _RGB], fonts: dict[str, str] | None) -> None:
        super().__init__(format="A4", unit="mm")
        self.colours = colours
        self.unicode = fonts is not None
        if fonts is not None:
            self.add_font("body", "", fonts["sans"])
            self.add_font("body", "B", fonts["sans-b"])
            self.add_font("mono", "", fonts["mono"])
            self.sans, self.mono = "body", "mono"
        else:
            self.sans, self.mono = "helvetica", "courier"
        self._widths: dict[tuple[str, str, float], dict[str, float]] = {}
        self.set_auto_page_break(True, margin=18)
        self.set_margins(18, 16, 18)

    def header(self) -> None:
        # Every page gets the branding background before anything is drawn on it.
        self.set_fill_color(*self.colours["bg"])
        self.rect(0, 0, self.w, self.h, "F")
        self.set_fill_color(*self.colours["accent"])
        self.rect(0, 0, self.w, 4, "F")

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.sans, "", 8)
        self.set_text_color(*self.colours["muted"])
        self.cell(0, 6, f"Page {self.page_no()} of {{nb}}", align="C")

    def text_of(self, text: str) -> str:
        if self.unicode:
            return text
        return text.encode("latin-1", "replace").decode("latin-1")

    def _width(self, word: str, cache: dict[str, float]) -> float:
        width = cache.get(word)
        if width is None:
            width = cache[word] = self.get_string_width(word)
        return width

    def lines(self, text: str, width: float) -> list[str]:
        """Greedy word wrap with cached word widths. (fpdf2's multi_cell re-measures the whole line for every
        character it adds, which is quadratic in paragraph length: ~3 s for a 36-page transcript.)"""
        cache = self._widths.setdefault((self.font_family, self.font_style, self.font_size_pt), {})
        space = self._width(" ", cache)
        out: list[str] = []
        for raw in text.split("\n"):
            line: list[str] = []
            used = 0.0
            for word in raw.split(" "):
                w = self._width(word, cache)
                if w > width:  # a word wider than the line: cut it by characters
                    if line:
                        out.append(" ".join(line))
                        line, used = [], 0.0
                    piece = ""
                    for ch in word:
                        if piece and self.get_string_width(piece + ch) > width:
                            out.append(piece)
                            piece = ""
                        piece += ch
                    line, used = [piece], self.get_string_width(piece)
                    continue
                if line and used + space + w > width:
                    out.append(" ".join(line))
                    line, used = [word], w
                else:
                    used += (space if line else 0.0) + w
                    line.append(word)
            out.append(" ".join(line))
        return out

    def paragraph(self, text: str, height: float, *, indent: float = 0.0, fill: bool = False) -> None:
        width = self.epw - indent
        for line in self.lines(text, width - 2 * self.c_margin):
            self.set_x(self.l_margin + indent)
            self.cell(width, height, line, fill=fill, new_x="LMARGIN", new_y="NEXT")


def _write_block(pdf: _Pdf, block: Block) -> None:
    c = pdf.colours
    text = pdf.text_of(block.text.replace("**", ""))
    if block.kind == "heading":
        pdf.ln(1)
        pdf.set_font(pdf.sans, "B", 11.5)
        pdf.set_text_color(*c["accent"])
        pdf.paragraph(text, 6)
    elif block.kind == "meta":
        pdf.set_font(pdf.sans, "", 8.5)
        pdf.set_text_color(*c["muted"])
        pdf.paragraph(text, 4.5)
    elif block.kind == "code":
        pdf.set_font(pdf.mono, "", 8)
        pdf.set_text_color(*c["fg"])
        pdf.set_fill_color(*c["code"])
        pdf.paragraph(text.expandtabs(4), 4, fill=True)
    elif block.kind == "bullet":
        pdf.set_font(pdf.sans, "", 10)
        pdf.set_text_color(*c["fg"])
        pdf.set_x(pdf.l_margin)
        pdf.cell(5, 5.2, "•" if pdf.unicode else "-")
        pdf.set_x(pdf.l_margin)
        pdf.paragraph(text, 5.2, indent=5)
    else:
        pdf.set_font(pdf.sans, "", 10)
        pdf.set_text_color(*c["fg"])
        pdf.paragraph(text, 5.2)
    pdf.ln(1.5)


def render_pdf(doc: Document) -> bytes:
    pdf = _Pdf(BRANDS[doc.branding], unicode_fonts())
    pdf.set_title(pdf.text_of(doc.title))
    pdf.set_creator("artifact-mcp")
    pdf.set_subject(f"{doc.document_type} generated from {len(doc.citations)} artifact(s)")
    pdf.add_page()
    c = pdf.colours
    # Title band
    pdf.set_fill_color(*c["accent"])
    pdf.set_text_color(*c["band_fg"])
    pdf.set_font(pdf.sans, "B", 18)
    pdf.multi_cell(pdf.epw, 10, pdf.text_of(doc.title), fill=True, padding=(3, 4), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(pdf.sans, "", 8.5)
    pdf.set_text_color(*c["muted"])
    pdf.ln(1)
    pdf.multi_cell(pdf.epw, 5, pdf.text_of(
        f"{doc.document_type.capitalize()} · generated {doc.generated_at:%Y-%m-%d %H:%M UTC} · "
        f"{len(doc.citations)} source artifact(s)"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    sections = [*doc.sections]
    for section in sections:
        pdf.set_font(pdf.sans, "B", 14)
        pdf.set_text_color(*c["accent"])
        pdf.paragraph(pdf.text_of(section.heading), 8)
        pdf.set_draw_color(*c["accent"])
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + pdf.epw, pdf.get_y())
        pdf.ln(2)
        for block in section.blocks:
            _write_block(pdf, block)
        if section.citations:
            _write_block(pdf, Block(kind="meta", text="Cites: " + ", ".join(section.citations)))
        pdf.ln(2)
    pdf.set_font(pdf.sans, "B", 14)
    pdf.set_text_color(*c["accent"])
    pdf.paragraph("Sources", 8)
    for cit in doc.citations:
        _write_block(pdf, Block(kind="bullet", text=f"[{cit.artifact_id}] {cit.name} (v{cit.version}, "
                                                    f"{cit.created_at:%Y-%m-%d %H:%M UTC})"))
    return bytes(pdf.output())
