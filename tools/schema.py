"""Output schemas that clients can check cheaply.

Clients validate every `structuredContent` against the tool's `outputSchema` (the Python SDK with
`jsonschema`). Pydantic writes `X | None` as `anyOf: [X, {"type": "null"}]` and nested models as
`$ref`s; for a page of 50 artifacts that makes the Python client spend ~30 ms building failed-branch
errors and resolving references. `compact_schema` rewrites both into equivalent, flatter forms.
"""

from __future__ import annotations

import copy
from typing import Any

# Keywords that constrain only values of their own JSON type, so they are inert for null.
_TYPE_SPECIFIC = {
    "format", "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "multipleOf", "items", "prefixItems", "minItems", "maxItems", "uniqueItems", "properties", "required",
    "additionalProperties", "propertyNames", "minProperties", "maxProperties",
}
_ANNOTATIONS = {"title", "description", "default", "examples"}


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Inline local `$defs` (non-recursive ones) and turn nullable `anyOf`s into type lists."""
    defs = schema.get("$defs", {})
    out = _rewrite(copy.deepcopy({k: v for k, v in schema.items() if k != "$defs"}), defs, ())
    return out


def _rewrite(node: Any, defs: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_rewrite(n, defs, seen) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in seen or name not in defs:
            raise ValueError(f"cannot inline recursive or unknown schema reference {ref!r}")
        target = _rewrite(copy.deepcopy(defs[name]), defs, (*seen, name))
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return {**target, **extra}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _ANNOTATIONS:
            out[key] = value  # data, not schema (e.g. a default that looks like one)
        elif key in ("properties", "patternProperties") and isinstance(value, dict):
            out[key] = {name: _rewrite(sub, defs, seen) for name, sub in value.items()}
        else:
            out[key] = _rewrite(value, defs, seen)
    return _nullable(out)


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """`{"anyOf": [X, {"type": "null"}], ...}` -> X with `"type": [X.type, "null"]` when that is equivalent."""
    branches = node.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2 or {"type": "null"} not in branches:
        return node
    other = branches[0] if branches[1] == {"type": "null"} else branches[1]
    kind = other.get("type")
    if not isinstance(kind, str) or not set(other) <= _TYPE_SPECIFIC | _ANNOTATIONS | {"type"}:
        return node  # e.g. enum/const/allOf: null would not pass them, keep the anyOf
    merged = {k: v for k, v in node.items() if k != "anyOf"}
    merged.update({k: v for k, v in other.items() if k not in merged})
    merged["type"] = [kind, "null"]
    return merged
