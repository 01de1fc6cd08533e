"""The real `artifact-mcp serve` (stdio) as a subprocess, driven by the SDK client in both protocol eras."""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import BlobResourceContents, TextResourceContents

from tests.conftest import REPO, call, server_env

pytestmark = pytest.mark.anyio

TOOLS = {
    "list_artifacts", "get_artifact", "create_artifact", "upload_artifact", "update_artifact",
    "delete_artifact", "list_artifact_versions", "query_artifacts", "promote_artifact", "list_artifact_jobs",
}
TIMEOUT = 30
# What each client mode negotiates with our server.
PROTOCOL = {"auto": "2026-07-28", "legacy": "2025-11-25"}


def server_command() -> str:
    """The console script of the environment running the tests (the project's venv)."""
    for candidate in (Path(sys.executable).with_name("artifact-mcp"), REPO / ".venv" / "bin" / "artifact-mcp"):
        if candidate.exists():
            return str(candidate)
    raise AssertionError("artifact-mcp console script not found; run `make test` (pip install -e .)")


@asynccontextmanager
async def open_client(transport: Any, mode: str = "auto", timeout: float = TIMEOUT,
                      **options: Any) -> AsyncIterator[Client]:
    """`Client(transport, mode=mode, **options)` with a bounded connect and a bounded close, however long the
    body takes."""
    with anyio.fail_after(timeout) as scope:
        async with Client(transport, mode=mode, **options) as client:
            scope.deadline = math.inf
            try:
                yield client
            finally:
                scope.deadline = anyio.current_time() + timeout


def stdio_params(data_dir: Path, cwd: Path, *args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(command=server_command(), args=["serve", "--data-dir", str(data_dir), *args],
                                 cwd=str(cwd), env=server_env(**(env or {})))


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", params=["auto", "legacy"])
async def stdio_client_session(request: pytest.FixtureRequest,
                               tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Client]:
    """One server process per era, shared by the tests of this module (a server start costs ~1.5 s)."""
    tmp_path = tmp_path_factory.mktemp(f"stdio-{request.param}")
    params = stdio_params(tmp_path / "data", tmp_path)
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with open_client(stdio_client(params, errlog=errlog), request.param) as client:
            assert client.protocol_version == PROTOCOL[request.param]
            yield client


async def test_list_tools(stdio_client_session: Client) -> None:
    with anyio.fail_after(TIMEOUT):
        result = await stdio_client_session.list_tools()
    names = {tool.name for tool in result.tools}
    assert names >= TOOLS, TOOLS - names
    assert len(TOOLS) == 10


async def test_create_then_get(stdio_client_session: Client) -> None:
    with anyio.fail_after(TIMEOUT):
        created = await call(stdio_client_session, "create_artifact",
                             {"name": "report", "content": "# Findings\n\nall good ✓", "tags": ["t1"]})
        got = await call(stdio_client_session, "get_artifact", {"artifact_id": created["artifact_id"]})
        assert got["content"] == "# Findings\n\nall good ✓"
        assert got["name"] == "report" and got["version"] == 1 and got["tags"] == ["t1"]

        doc = {"rows": [1, 2, {"x": None}], "ok": True}
        created = await call(stdio_client_session, "create_artifact", {"name": "result", "content": doc})
        got = await call(stdio_client_session, "get_artifact", {"artifact_id": created["artifact_id"]})
        assert got["content"] == doc
        assert got["mime_type"] == "application/json"


async def test_upload_then_read_content_resource(stdio_client_session: Client) -> None:
    data = bytes(range(256)) * 40  # binary, not text
    with anyio.fail_after(TIMEOUT):
        uploaded = await call(stdio_client_session, "upload_artifact", {
            "name": "blob.bin", "data_base64": base64.b64encode(data).decode(), "file_name": "blob.bin",
        })
        assert uploaded["size_bytes"] == len(data)
        read = await stdio_client_session.read_resource(f"artifact://{uploaded['artifact_id']}/content")
    [contents] = read.contents
    assert isinstance(contents, BlobResourceContents)
    assert base64.b64decode(contents.blob) == data

    text = "plain text file\nline 2\n"
    with anyio.fail_after(TIMEOUT):
        uploaded = await call(stdio_client_session, "upload_artifact", {
            "data_base64": base64.b64encode(text.encode()).decode(), "file_name": "notes.txt",
        })
        assert uploaded["name"] == "notes.txt"
        read = await stdio_client_session.read_resource(f"artifact://{uploaded['artifact_id']}/content")
        meta = await stdio_client_session.read_resource(f"artifact://{uploaded['artifact_id']}")
    [contents] = read.contents
    assert isinstance(contents, TextResourceContents)
    assert contents.text == text
    assert contents.mime_type.startswith("text/plain")
    assert json.loads(meta.contents[0].text)["artifact_id"] == uploaded["artifact_id"]


async def test_data_dir_from_environment(tmp_path: Path) -> None:
    """ARTIFACT_MCP_DATA_DIR instead of --data-dir."""
    data_dir = tmp_path / "env-data"
    params = StdioServerParameters(command=server_command(), args=["serve"], cwd=str(tmp_path),
                                   env=server_env(ARTIFACT_MCP_DATA_DIR=str(data_dir)))
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with open_client(stdio_client(params, errlog=errlog), "legacy") as client:
            with anyio.fail_after(TIMEOUT):
                created = await call(client, "create_artifact", {"name": "persisted", "content": "still here"})
                got = await call(client, "get_artifact", {"artifact_id": created["artifact_id"]})
            assert (data_dir / "catalog.duckdb").exists()
    assert got["content"] == "still here"


def test_help() -> None:
    top = subprocess.run([server_command(), "--help"], capture_output=True, text=True, timeout=TIMEOUT)
    assert top.returncode == 0, top.stderr
    assert "serve" in top.stdout and "ARTIFACT_MCP_" in top.stdout

    serve = subprocess.run([server_command(), "serve", "--help"], capture_output=True, text=True, timeout=TIMEOUT)
    assert serve.returncode == 0, serve.stderr
    for needle in ("--transport", "--host", "--port", "--data-dir", "stdio", "http", "sse", "ARTIFACT_MCP_"):
        assert needle in serve.stdout, needle


@pytest.mark.parametrize("via", ["script", "make"])
def test_stdout_is_only_json_rpc(tmp_path: Path, via: str) -> None:
    """Raw pipes: every stdout line is a JSON-RPC message; the JSON-line logs go to stderr. Also through the
    README's `make serve`, whose setup must not print to stdout."""
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
         "params": {"name": "create_artifact", "arguments": {"name": "n", "content": "hello"}}},
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call",
         "params": {"name": "get_artifact", "arguments": {"artifact_id": "art_" + "0" * 32}}},
        {"jsonrpc": "2.0", "id": 5, "method": "resources/list"},
    ]
    env = {k: v for k, v in server_env().items() if not k.startswith("MAKE")}
    errlog = (tmp_path / "stderr.log").open("wb")
    args = ["--data-dir", str(tmp_path / "data"), "--log-level", "DEBUG"]
    command = ([server_command(), "serve", *args] if via == "script"
               else ["make", "serve", f"ARGS={' '.join(args)}"])
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog,
                            cwd=tmp_path if via == "script" else REPO, env=env)
    watchdog = threading.Timer(TIMEOUT, proc.kill)  # no read below can hang for longer
    watchdog.start()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        seen: dict[int, dict] = {}
        lines: list[bytes] = []
        for request in requests:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
            if "id" not in request:
                continue
            while request["id"] not in seen:
                line = proc.stdout.readline()
                assert line, "server closed stdout early"
                lines.append(line)
                message = json.loads(line)
                if "id" in message:
                    seen[message["id"]] = message
        stdout, _ = proc.communicate(timeout=TIMEOUT)  # closes stdin: the server exits
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        errlog.close()
    stderr = (tmp_path / "stderr.log").read_bytes()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    lines += stdout.splitlines()
    for line in lines:
        if not line.strip():
            continue
        message = json.loads(line)
        assert message.get("jsonrpc") == "2.0", line
        assert {"id", "method", "result", "error"} & set(message), line
    assert {t["name"] for t in seen[2]["result"]["tools"]} >= TOOLS
    assert seen[3]["result"]["isError"] is False
    assert seen[4]["result"]["isError"] is True
    log_lines = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
    assert log_lines, "expected JSON-line logs on stderr"
    assert all("level" in entry and "msg" in entry for entry in log_lines)
