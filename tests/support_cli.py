"""Driving the people's CLI as a person does: `artifact-mcp <command>` as its own process, beside an
`artifact-mcp serve` (stdio) subprocess that owns the data directory."""

from __future__ import annotations

import io
import json
import random
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import stdio_client
from pypdf import PdfWriter

from tests.conftest import server_env
from tests.test_stdio import open_client, server_command, stdio_params

CLI_TIMEOUT = 120


@asynccontextmanager
async def serving(data_dir: Path, log: Path) -> AsyncIterator[Client]:
    """A stdio server owning `data_dir` (its session open, so it has taken the store before this yields)."""
    with log.open("w") as errlog:
        async with open_client(stdio_client(stdio_params(data_dir, data_dir.parent), errlog=errlog)) as client:
            await client.call_tool("list_artifacts", {"limit": 1})  # returns once the store is open
            yield client


async def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one CLI command to its end; its stdout, stderr and exit code."""
    with anyio.fail_after(CLI_TIMEOUT):
        proc = await anyio.run_process([server_command(), *args, "--data-dir", str(data_dir)], check=False,
                                       env=server_env())
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


async def cli_json(data_dir: Path, *args: str) -> Any:
    done = await cli(data_dir, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def pdf_bytes(text: str) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(72, 72)
    writer.add_metadata({"/Title": text})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def mixed_folder(root: Path, n: int = 200, seed: int = 7) -> dict[str, Path]:
    """`n` files in nested folders, a fifth each md, py, json, pdf, png; the md files carry a unique word each."""
    rng = random.Random(seed)
    files: dict[str, Path] = {}
    for i in range(n):
        kind = ("md", "py", "json", "pdf", "png")[i % 5]
        folder = root / f"part{i % 4}" / ("deep" if i % 3 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"file{i:03d}.{kind}"
        if kind == "md":
            path.write_text(f"# Note {i}\n\nThe keyword zq{i:03d}word appears only here. {rng.random()}\n")
        elif kind == "py":
            path.write_text(f"def f{i}():\n    return {i}  # {rng.random()}\n")
        elif kind == "json":
            path.write_text(json.dumps({"n": i, "r": rng.random()}))
        elif kind == "pdf":
            path.write_bytes(pdf_bytes(f"document {i}"))
        else:
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(2000 + i))
        files[str(path.resolve())] = path
    return files
