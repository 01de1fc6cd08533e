"""What text a client may send: the checks every door shares (tools, both REST dialects, the CLI).

Two rules, applied by the request models themselves so that no door can forget them:
- No lone surrogate anywhere (`"\\ud800"` parses from JSON but is not Unicode text: DuckDB, the JSON encoder
  and every HTTP client fail on it later, far from the request that brought it).
- No NUL or other C0 control character in identifiers and labels: names, tags, keywords, file names, mime types,
  provenance fields (content and free prose keep tab, newline and carriage return; content keeps everything).
File names are reduced to a safe base name before they are stored or used as a default name.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_PROSE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_FILE_NAME_CHARS = 255


def has_surrogate(value: Any) -> bool:
    """True if `value` (a string, or JSON-like lists/dicts of them, keys included) holds a lone surrogate."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(has_surrogate(k) or has_surrogate(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_surrogate(v) for v in value)
    return False


def printable(value: str) -> str:
    """`value` made safe to echo back (JSON, logs): lone surrogates become U+FFFD."""
    return _SURROGATE.sub("\ufffd", value)


def _no_control(value: str | None) -> str | None:
    if value is not None and (m := _CONTROL.search(value)) is not None:
        raise ValueError(f"contains the control character U+{ord(m.group()):04X} at position {m.start()}; "
                         "names, tags, keywords, file names and provenance fields take printable text only")
    return value


def _no_control_in_prose(value: str | None) -> str | None:
    if value is not None and (m := _CONTROL_IN_PROSE.search(value)) is not None:
        raise ValueError(f"contains the control character U+{ord(m.group()):04X} at position {m.start()}; "
                         "only tab, newline and carriage return are allowed here")
    return value


def safe_file_name(value: str | None) -> str | None:
    """The base name a file is stored under: no directory part (`/` or `\\`), no `.`/`..`, no leading dots
    (a hidden or dot-dot name), no control characters, NFC-normalised and at most 255 characters (the
    extension kept). None when nothing usable is left, e.g. for `../` (the caller then needs a `name`)."""
    if value is None:
        return None
    _no_control(value)
    base = re.split(r"[/\\]", unicodedata.normalize("NFC", value))[-1].strip()
    base = base.lstrip(". ").rstrip(" ")
    if not base:
        return None
    if len(base) > MAX_FILE_NAME_CHARS:
        stem, dot, ext = base.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            base = stem[: MAX_FILE_NAME_CHARS - len(ext) - 1] + "." + ext
        else:
            base = base[:MAX_FILE_NAME_CHARS]
    return base


Label = AfterValidator(_no_control)
Prose = AfterValidator(_no_control_in_prose)
SafeFileName = AfterValidator(safe_file_name)


class CleanInput(BaseModel):
    """Base of every request model: an unknown field is an error (not silently dropped), and a lone surrogate in
    any field, at any depth, is refused with the field's location (a 422 on REST, a tool error on MCP) before
    anything else looks at the value."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_surrogates(cls, value: Any) -> Any:
        if has_surrogate(value):
            raise ValueError("contains an unpaired surrogate (e.g. \\ud800), which is not valid Unicode text; "
                             "send UTF-8 text (binary data as base64 or a file upload)")
        return value
