"""The stdio server driven by an independent MCP client: the MCP Inspector CLI (Node, TypeScript SDK).

Needs the project-local Node 22 + Inspector from package.json (`make test` installs them)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, server_env
from tests.test_stdio import TOOLS, server_command

NODE_BIN = REPO / "node_modules" / ".bin"
INSPECTOR = NODE_BIN / "mcp-inspector"
TIMEOUT = 25


@pytest.fixture(scope="module")
def inspector() -> Path:
    if not INSPECTOR.exists() or not (NODE_BIN / "node").exists():
        pytest.fail(f"the MCP Inspector CLI is not installed ({INSPECTOR} missing): run `make test`, which runs "
                    "`npm install` for package.json (Node 22 + @modelcontextprotocol/inspector)", pytrace=False)
    return INSPECTOR


def _start(data_dir: Path, *options: str) -> subprocess.Popen[str]:
    """`mcp-inspector --cli <server command> -- <options>`; node_modules/.bin first on PATH selects Node 22."""
    env = server_env()
    env["PATH"] = f"{NODE_BIN}{os.pathsep}{env.get('PATH', '')}"
    command = [str(INSPECTOR), "--cli", server_command(), "serve", "--data-dir", str(data_dir), "--",
               *options, "--format", "json"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, f"inspector exited {proc.returncode}:\n{stderr[-3000:]}\n{stdout[-2000:]}"
    return json.loads(stdout)["result"]


def test_inspector_cli(inspector: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    doc = {"title": "inspected", "items": [1, 2, 3]}
    # Inspector runs go in parallel (each starts its own server process; they share the store).
    listing = _start(data_dir, "--method", "tools/list")
    create = _start(data_dir, "--method", "tools/call", "--tool-name", "create_artifact",
                    "--tool-args-json", json.dumps({"name": "from-inspector", "content": doc, "tags": ["cli"]}))
    tools = _result(listing)["tools"]
    created = _result(create)
    names = {tool["name"] for tool in tools}
    assert names >= TOOLS, TOOLS - names
    create_tool = next(tool for tool in tools if tool["name"] == "create_artifact")
    assert "name" in create_tool["inputSchema"]["properties"]
    assert create_tool.get("outputSchema"), "create_artifact should declare an output schema"

    assert created["isError"] is False
    artifact_id = created["structuredContent"]["artifact_id"]
    assert any(item.get("type") == "resource_link" and item["uri"] == f"artifact://{artifact_id}"
               for item in created["content"])

    # The Inspector speaks the 2025-11-25 handshake to stdio targets by default; the get uses 2026-07-28.
    got = _start(data_dir, "--method", "tools/call", "--tool-name", "get_artifact",
                 "--tool-arg", f"artifact_id={artifact_id}", "--protocol-era", "modern")
    read = _start(data_dir, "--method", "resources/read", "--uri", f"artifact://{artifact_id}/content")
    result = _result(got)
    assert result["isError"] is False
    assert result["structuredContent"]["content"] == doc
    assert result["structuredContent"]["tags"] == ["cli"]
    [contents] = _result(read)["contents"]
    assert contents["uri"] == f"artifact://{artifact_id}/content"
    assert contents["mimeType"] == "application/json"
    assert json.loads(contents["text"]) == doc
