"""Crash safety: SIGKILL the stdio server in the middle of a burst of writes, restart it, check the store.

Every create that returned must be there with exactly its content; nothing half-written may be visible;
no catalog row may point at a temporary or missing/corrupt blob."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import signal
from pathlib import Path
from typing import Any

import anyio
import duckdb
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp.client.stdio import stdio_client
from mcp.types import BlobResourceContents, TextResourceContents

from tests.conftest import call, server_env
from tests.test_stdio import open_client, server_command, stdio_params

pytestmark = pytest.mark.anyio

BURST = 240  # requests fired without waiting for answers
KILL_AFTER = 70  # SIGKILL once this many answers are in
TIMEOUT = 40


def _payloads(rng: random.Random) -> list[tuple[str, dict[str, Any], Any]]:
    """(tool, arguments, expected content: str / JSON / bytes) for every request of the burst."""
    out: list[tuple[str, dict[str, Any], Any]] = []
    for i in range(BURST):
        name = f"crash-{i:04d}"
        kind = i % 4
        if kind == 0:
            text = f"text artifact {i}\n" + "lorem ipsum " * rng.randint(1, 400)
            out.append(("create_artifact", {"name": name, "content": text}, text))
        elif kind == 1:
            doc = {"i": i, "values": [rng.random() for _ in range(rng.randint(1, 50))], "tag": name}
            out.append(("create_artifact", {"name": name, "content": doc}, doc))
        else:
            # Binary uploads of varied sizes (some large enough that the write is in flight at the kill).
            size = rng.choice([17, 1000, 30_000, 120_000])
            data = rng.randbytes(size) + name.encode()
            out.append(("upload_artifact", {"name": name, "data_base64": base64.b64encode(data).decode(),
                                            "file_name": f"{name}.bin",
                                            "mime_type": "application/octet-stream"}, data))
    return out


async def _rpc_burst(proc: Process, payloads: list[tuple[str, dict[str, Any], Any]]) -> dict[int, dict[str, Any]]:
    """Handshake, fire the whole burst, SIGKILL the server after KILL_AFTER answers; return the answers."""
    assert proc.stdin is not None and proc.stdout is not None
    reader = BufferedByteReceiveStream(proc.stdout)
    answers: dict[int, dict[str, Any]] = {}

    async def send(message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        await proc.stdin.send(json.dumps(message).encode() + b"\n")

    async def receive() -> dict[str, Any]:
        return json.loads(await reader.receive_until(b"\n", 64 * 1024 * 1024))

    await send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "crash", "version": "0"}}})
    while "result" not in (message := await receive()) or message.get("id") != 0:
        pass
    await send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    killed = anyio.Event()

    async def fire() -> None:
        try:
            for i, (tool, args, _) in enumerate(payloads, start=1):
                await send({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                            "params": {"name": tool, "arguments": args}})
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            assert killed.is_set(), "the server stopped reading before it was killed"

    async def collect() -> None:
        try:
            while True:
                message = await receive()
                if "id" in message and message["id"] != 0:
                    answers[message["id"]] = message
                    if len(answers) >= KILL_AFTER:
                        killed.set()
                        proc.send_signal(signal.SIGKILL)
                        return
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
            raise AssertionError(f"server exited on its own after {len(answers)} answers") from None

    async with anyio.create_task_group() as tg:
        tg.start_soon(fire)
        tg.start_soon(collect)
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return answers


async def _all_listed(client: Any) -> tuple[list[dict[str, Any]], int]:
    artifacts: list[dict[str, Any]] = []
    cursor = None
    totals = set()
    while True:
        args: dict[str, Any] = {"limit": 200}
        if cursor:
            args["cursor"] = cursor
        page = await call(client, "list_artifacts", args)
        artifacts += page["artifacts"]
        totals.add(page["total"])
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert len(totals) == 1, totals
    return artifacts, totals.pop()


async def _read_back(client: Any, artifact: dict[str, Any]) -> Any:
    """The artifact's content through get_artifact and through its /content resource (they must agree)."""
    got = await call(client, "get_artifact", {"artifact_id": artifact["artifact_id"], "max_chars": 1_000_000})
    read = await client.read_resource(f"artifact://{artifact['artifact_id']}/content")
    [contents] = read.contents
    if got["has_file"]:
        assert isinstance(contents, BlobResourceContents), contents
        data = base64.b64decode(contents.blob)
        assert len(data) == got["size_bytes"]
        assert hashlib.sha256(data).hexdigest() == got["sha256"], f"blob of {got['artifact_id']} is corrupt"
        return data
    assert isinstance(contents, TextResourceContents)
    assert len(contents.text.encode()) == got["size_bytes"]
    assert got["content_truncated"] is False
    if got["mime_type"] == "application/json":
        assert json.loads(contents.text) == got["content"]
    else:
        assert contents.text == got["content"]
    return got["content"]


async def test_sigkill_mid_burst_loses_nothing_that_returned(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    payloads = _payloads(random.Random(1234))
    env = server_env()
    with (tmp_path / "stderr-1.log").open("wb") as errlog:
        proc = await anyio.open_process([server_command(), "serve", "--data-dir", str(data_dir)], stderr=errlog,
                                        cwd=tmp_path, env=env)
    try:
        with anyio.fail_after(TIMEOUT):
            answers = await _rpc_burst(proc, payloads)
    finally:
        if proc.returncode is None:
            proc.kill()
            with anyio.move_on_after(10):
                await proc.wait()

    returned: dict[str, tuple[int, Any]] = {}  # artifact_id -> (payload index, expected content)
    for rid, message in answers.items():
        result = message["result"]
        assert result["isError"] is False, result["content"]
        returned[result["structuredContent"]["artifact_id"]] = (rid - 1, payloads[rid - 1][2])
    assert KILL_AFTER <= len(returned) < BURST, "the kill should land in the middle of the burst"

    params = stdio_params(data_dir, tmp_path)
    with (tmp_path / "stderr-2.log").open("w") as errlog:
        async with open_client(stdio_client(params, errlog=errlog), "legacy") as client:
            with anyio.fail_after(TIMEOUT):
                listed, total = await _all_listed(client)
                by_id = {a["artifact_id"]: a for a in listed}
                assert len(by_id) == len(listed) == total

                # Every create that returned survived the crash with exactly its content.
                missing = set(returned) - set(by_id)
                assert not missing, f"{len(missing)} acknowledged artifacts lost, e.g. {sorted(missing)[:3]}"
                # Every visible artifact (acknowledged or not) is complete and matches what was sent.
                by_name = {payloads[i][1]["name"]: expected for i, (_, _, expected) in enumerate(payloads)}
                readable = 0
                for artifact in listed:
                    content = await _read_back(client, artifact)
                    assert artifact["name"] in by_name, artifact["name"]
                    assert content == by_name[artifact["name"]], f"{artifact['name']} differs from what was sent"
                    if artifact["artifact_id"] in returned:
                        assert content == returned[artifact["artifact_id"]][1]
                    readable += 1
                assert readable == total
                assert len({a["name"] for a in listed}) == total, "an artifact was stored twice"

                # The restarted server still takes writes.
                after = await call(client, "create_artifact", {"name": "after-crash", "content": "ok"})
                assert (await call(client, "get_artifact", {"artifact_id": after["artifact_id"]}))["content"] == "ok"

    # The server has exited (lock released): inspect the catalog and blob store directly.
    blob_root = data_dir / "blobs"
    con = duckdb.connect(str(data_dir / "catalog.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT artifact_id, blob_key, sha256, size_bytes FROM artifacts "
                           "WHERE blob_key IS NOT NULL").fetchall()
        count = con.execute("SELECT count(*) FROM artifacts").fetchone()[0]
    finally:
        con.close()
    assert count == total + 1
    for artifact_id, key, digest, size in rows:
        assert not key.startswith("tmp/"), f"{artifact_id} references a temporary blob {key}"
        assert key.endswith(digest), (artifact_id, key, digest)
        data = (blob_root / key).read_bytes()
        assert len(data) == size and hashlib.sha256(data).hexdigest() == digest, f"blob {key} is corrupt"
    # Whatever is stored under a real key is complete (partial writes may only linger under tmp/).
    for path in (blob_root / "sha256").rglob("*"):
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"partial blob at {path}"
