"""Which parser a text gets: its mime type, else its file name's extension."""

from __future__ import annotations

from pathlib import PurePosixPath

_MIME_KINDS = {
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/x-jsonlines": "ndjson",
    "application/pdf": "text",  # split() gets the text content.extract_pdf_text() made, whatever the file is called
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


def kind_of(mime_type: str, file_name: str | None) -> str:
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
