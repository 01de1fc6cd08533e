"""Text extraction from PDF files (pypdf, imported on first use)."""

from __future__ import annotations

import io

# Larger PDFs are not parsed (the parser holds the whole file): they are indexed by their descriptive fields.
MAX_PDF_EXTRACT_BYTES = 64 * 1024 * 1024


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
