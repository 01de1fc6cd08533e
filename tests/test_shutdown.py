"""Graceful shutdown over HTTP: SIGTERM lets in-flight writes finish (and answer) before the store closes."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import anyio
import httpx
import pytest

from tests.conftest import REPO, server_env
from tests.support_http import free_port, mcp_http, stop, wait_for_port
from tests.test_stdio import TIMEOUT, server_command

pytestmark = pytest.mark.anyio
SLOW = "class:tests.support_embeddings:SlowEmbedding"


async def test_sigterm_finishes_in_flight_write(tmp_path: Path) -> None:
    data = tmp_path / "data"
    started = tmp_path / "embedding-started"
    env = server_env(PYTHONPATH=str(REPO), ARTIFACT_MCP_EMBEDDING_MODEL=SLOW,
                     ARTIFACT_MCP_EMBEDDING_KWARGS=json.dumps({"delay_seconds": 3, "started_file": str(started)}))
    port = free_port()
    with (tmp_path / "stderr.log").open("wb") as errlog:
        proc = subprocess.Popen([server_command(), "serve", "--transport", "http", "--port", str(port), "--auth",
                                 "none", "--data-dir", str(data)], stdout=subprocess.DEVNULL, stderr=errlog,
                                cwd=tmp_path, env=env)
    try:
        assert wait_for_port(proc, port, time.monotonic() + TIMEOUT)
        answers: list[dict] = []
        async with mcp_http(port) as client, anyio.create_task_group() as tg:
            # The client checks results against output schemas it fetches lazily: fetch them while the server
            # still accepts connections.
            await client.list_tools()

            async def write() -> None:
                # Waits for indexing, which the slow embedding stretches to ~3 s: in flight at SIGTERM.
                result = await client.call_tool("create_artifact", {"name": "last words", "content": "kept",
                                                                    "wait_for_index": True})
                assert not result.is_error, result.content
                answers.append(result.structured_content or {})

            tg.start_soon(write)
            with anyio.fail_after(TIMEOUT):
                while not started.exists():
                    await anyio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            await anyio.sleep(0.3)
            # Draining: no new connections (a load balancer's probe fails) while the write is still running.
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            assert not answers
        [art] = answers
        assert art["is_indexed"] and art["status"] == "ready"
        assert proc.wait(timeout=TIMEOUT) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once done
    finally:
        stop(proc)

    # The acknowledged write is in the store after restart.
    port = free_port()
    with (tmp_path / "stderr-2.log").open("wb") as errlog:
        proc = subprocess.Popen([server_command(), "serve", "--transport", "http", "--port", str(port), "--auth",
                                 "none", "--data-dir", str(data), "--embedding-model", "hash:64"],
                                stdout=subprocess.DEVNULL, stderr=errlog, cwd=tmp_path, env=server_env())
    try:
        assert wait_for_port(proc, port, time.monotonic() + TIMEOUT)
        async with mcp_http(port) as client:
            got = await client.call_tool("get_artifact", {"artifact_id": art["artifact_id"]})
            assert not got.is_error and (got.structured_content or {})["content"] == "kept"
    finally:
        stop(proc)
