"""JSON and NDJSON, split by structure: whole values when they fit, else per member, each chunk labelled with
the JSON path of its members."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from artifact_mcp.storage.index.chunking.packing import capped_tokens, fits, trim
from artifact_mcp.storage.index.chunking.prose import prose_ranges
from artifact_mcp.storage.index.chunking.spans import ChunkingConfig, Span

_decoder = json.JSONDecoder()
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_Path = tuple[str | int, ...]


@dataclass(slots=True)
class _Atom:
    start: int
    end: int
    path: _Path
    tokens: int


def _skip_space(text: str, i: int) -> int:
    m = _JSON_SPACE.match(text, i)
    return m.end() if m else i


def _members(text: str, i: int) -> list[tuple[int, int, int, str | int]]:
    """(member start, value start, value end, key or index) of the container at text[i], known valid JSON."""
    close = "}" if text[i] == "{" else "]"
    j = _skip_space(text, i + 1)
    out: list[tuple[int, int, int, str | int]] = []
    while text[j] != close:
        member_start = j
        key: str | int = len(out)
        if close == "}":
            key, j = _decoder.raw_decode(text, j)
            j = _skip_space(text, _skip_space(text, j) + 1)  # past the colon
        value_start = j
        _, j = _decoder.raw_decode(text, j)
        out.append((member_start, value_start, j, key))
        j = _skip_space(text, j)
        if text[j] == ",":
            j = _skip_space(text, j + 1)
    return out


def _json_atoms(text: str, lo: int, hi: int, value_start: int, path: _Path, budget: int, out: list[_Atom]) -> None:
    """Atoms partitioning text[lo:hi], a region holding one value: whole if it fits, else per member.

    The region's own key, brackets and commas ride along with its first and last members, so that
    chunks stay contiguous and no byte of the source is left out.
    """
    size = capped_tokens(text[lo:hi], budget)
    members = _members(text, value_start) if size > budget and text[value_start] in "{[" else []
    if not members:
        out.append(_Atom(lo, hi, path, size))
        return
    starts = [lo] + [m[0] for m in members[1:]]
    ends = [*starts[1:], hi]
    for (_, member_value, _, key), a, b in zip(members, starts, ends, strict=True):
        _json_atoms(text, a, b, member_value, (*path, key), budget, out)


def _json_path(path: _Path) -> str:
    parts = ["$"]
    for key in path:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif _PLAIN_KEY.fullmatch(key):
            parts.append(f".{key}")
        else:
            parts.append(f"[{json.dumps(key, ensure_ascii=False)}]")
    return "".join(parts)


def _group_path(paths: Sequence[_Path]) -> str:
    """One label for consecutive members: `$.results[3]`, `$.results[3:6]`, `$.results[38:40], $.meta`."""
    runs: list[list[_Path]] = []
    for path in paths:
        if runs and runs[-1][0][:-1] == path[:-1]:
            runs[-1].append(path)
        else:
            runs.append([path])
    labels = []
    for run in runs:
        first, last = run[0], run[-1]
        if len(run) == 1:
            labels.append(_json_path(first))
        elif isinstance(first[-1], int) and isinstance(last[-1], int):
            labels.append(f"{_json_path(first[:-1])}[{first[-1]}:{last[-1] + 1}]")
        else:  # several keys of one object: the keys are in the text
            labels.append(_json_path(first[:-1]))
    if len(labels) > 3:  # members scattered over many containers: name what they share
        common = list(paths[0])
        for path in paths[1:]:
            shared = 0
            while shared < min(len(common), len(path)) and common[shared] == path[shared]:
                shared += 1
            del common[shared:]
        return _json_path(tuple(common))
    return ", ".join(labels)


def _json_atoms_of(text: str, budget: int) -> list[_Atom]:
    json.loads(text)  # validates: the walk below assumes well-formed JSON
    atoms: list[_Atom] = []
    _json_atoms(text, 0, len(text), _skip_space(text, 0), (), budget, atoms)
    return atoms


def _ndjson_atoms(text: str, budget: int) -> list[_Atom]:
    """Atoms of NDJSON: whole lines, split structurally only when one alone is too big.

    Line i is addressed as $[i], as if the file were one array.
    """
    atoms: list[_Atom] = []
    lines = [m for m in re.finditer(r"[^\n]*\n?", text) if m.group().strip()]
    for i, m in enumerate(lines):
        lo = 0 if i == 0 else m.start()
        hi = lines[i + 1].start() if i + 1 < len(lines) else len(text)
        value_start, value_end = trim(text, m.start(), m.end()) or (lo, hi)
        if not fits(text[lo:hi], budget):
            try:
                json.loads(text[value_start:value_end])
            except ValueError:  # not JSON: one oversized atom, split as prose
                atoms.append(_Atom(lo, hi, (i,), budget + 1))
                continue
        _json_atoms(text, lo, hi, value_start, (i,), budget, atoms)
    return atoms


def split_json(text: str, config: ChunkingConfig, ndjson: bool) -> list[Span] | None:
    budget = config.chunk_size
    try:
        atoms = _ndjson_atoms(text, budget) if ndjson else _json_atoms_of(text, budget)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's stack
        return None
    spans: list[Span] = []
    group: list[_Atom] = []

    def flush() -> None:
        if group:
            path = _group_path([a.path for a in group])
            spans.append(Span(group[0].start, group[-1].end, "" if path == "$" else path + ":\n"))
            group.clear()

    total = 0
    for atom in atoms:
        if atom.tokens > budget:  # a scalar (long string) or a non-JSON line too big to keep whole
            flush()
            path = _json_path(atom.path)
            prefix = "" if path == "$" else path + ":\n"
            ranges = prose_ranges(text, atom.start, atom.end, config, prefix)
            spans.extend(Span(s, e, prefix) for s, e in ranges)
            continue
        if group and total + atom.tokens > budget:
            flush()
        if not group:
            total = 0
        group.append(atom)
        total += atom.tokens
    flush()
    return spans
