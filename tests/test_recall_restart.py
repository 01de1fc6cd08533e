"""A server killed in the middle of an index job finishes it after restart; a new embedding model re-indexes."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import anyio
import duckdb
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.client.stdio import stdio_client

from tests.conftest import REPO, call, indexed, server_env
from tests.test_stdio import open_client, server_command, stdio_params

pytestmark = pytest.mark.anyio
TIMEOUT = 60
SLOW = "class:tests.support_embeddings:SlowEmbedding"


def _env(**kwargs: Any) -> dict[str, str]:
    return server_env(PYTHONPATH=str(REPO), ARTIFACT_MCP_EMBEDDING_MODEL=SLOW,
                      ARTIFACT_MCP_EMBEDDING_KWARGS=json.dumps(kwargs))


async def _create_then_kill_mid_job(data_dir: Path, started: Path, tmp_path: Path) -> str:
    """Create an artifact on a server whose embedding hangs, SIGKILL the server inside the job."""
    env = _env(delay_seconds=120, started_file=str(started))
    with (tmp_path / "stderr-1.log").open("wb") as errlog:
        proc = await anyio.open_process([server_command(), "serve", "--data-dir", str(data_dir)], stderr=errlog,
                                        cwd=tmp_path, env=env)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        reader = BufferedByteReceiveStream(proc.stdout)

        async def rpc(message: dict[str, Any]) -> dict[str, Any]:
            assert proc.stdin is not None
            await proc.stdin.send(json.dumps(message).encode() + b"\n")
            while True:
                answer = json.loads(await reader.receive_until(b"\n", 1 << 24))
                if answer.get("id") == message["id"]:
                    return answer

        await rpc({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
        await proc.stdin.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
        answer = await rpc({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "create_artifact", "arguments": {"name": "interrupted", "content": "kiwi orchard yields"}}})
        artifact = answer["result"]["structuredContent"]
        assert artifact["status"] == "pending"
        while not started.exists():  # the job is now inside the embedding call
            await anyio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        return artifact["artifact_id"]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_restart_resumes_a_half_done_job(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with anyio.fail_after(TIMEOUT):
        artifact_id = await _create_then_kill_mid_job(data_dir, tmp_path / "started", tmp_path)

    con = duckdb.connect(str(data_dir / "catalog.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT status, attempts FROM jobs").fetchall() == [("running", 1)]
        assert con.execute("SELECT count(*) FROM chunks").fetchone() == (0,)
    finally:
        con.close()

    params = stdio_params(data_dir, tmp_path, env=_env(delay_seconds=0))
    with (tmp_path / "stderr-2.log").open("w") as errlog:
        async with open_client(stdio_client(params, errlog=errlog), "legacy") as client:
            with anyio.fail_after(TIMEOUT):
                art = await indexed(client, artifact_id)
                assert art["status"] == "ready" and art["index_attempts"] == 2 and art["chunk_count"] == 1
                jobs = (await call(client, "list_artifact_jobs", {"artifact_id": artifact_id}))["jobs"]
                assert [(j["status"], j["attempts"]) for j in jobs] == [("succeeded", 2)]
                hits = (await call(client, "query_artifacts", {"query": "kiwi orchard"}))["results"]
                assert [h["artifact"]["artifact_id"] for h in hits] == [artifact_id]


async def test_changing_the_embedding_model_reindexes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = stdio_params(data_dir, tmp_path, env={"ARTIFACT_MCP_EMBEDDING_MODEL": "hash:384"})
    with (tmp_path / "stderr-1.log").open("w") as errlog:
        async with open_client(stdio_client(first, errlog=errlog), "legacy") as client:
            with anyio.fail_after(TIMEOUT):
                art = await call(client, "create_artifact", {"name": "m", "content": "mango groves",
                                                             "wait_for_index": True})
                assert art["embedding_model_id"] == "hash-384"
    second = stdio_params(data_dir, tmp_path, env={"ARTIFACT_MCP_EMBEDDING_MODEL": "hash:256"})
    with (tmp_path / "stderr-2.log").open("w") as errlog:
        async with open_client(stdio_client(second, errlog=errlog), "legacy") as client:
            with anyio.fail_after(TIMEOUT):
                got = await indexed(client, art["artifact_id"])
                assert got["embedding_model_id"] == "hash-256"
                jobs = (await call(client, "list_artifact_jobs", {"artifact_id": art["artifact_id"]}))["jobs"]
                assert [(j["type"], j["status"]) for j in jobs] == [("reindex", "succeeded"), ("index", "succeeded")]
                hits = (await call(client, "query_artifacts", {"query": "mango", "mode": "semantic"}))["results"]
                assert [h["artifact"]["artifact_id"] for h in hits] == [art["artifact_id"]]
