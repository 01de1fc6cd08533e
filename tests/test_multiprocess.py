"""Three stdio servers on one data directory at once (three desktop agents, one store).

The first owns DuckDB; the others forward over the local socket. When the owner's session closes, one of
the others takes over and nobody sees a lock error."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client
from mcp.types import ResourceUpdatedNotification

from tests.conftest import call, server_env
from tests.test_stdio import open_client, server_command, stdio_params

pytestmark = pytest.mark.anyio

TIMEOUT = 40
PER_CLIENT = 4


def _lock_is_held(lock_path: Path) -> bool:
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


async def _hold(params: Any, errlog_path: Path, mode: str, close: anyio.Event, closed: anyio.Event,
                options: dict[str, Any], *, task_status: anyio.abc.TaskStatus[Client]) -> None:
    """Open a client session in this task (so it is closed by the task that opened it) until `close` is set;
    `closed` is set once the session is over and its server process has exited."""
    try:
        with errlog_path.open("w") as errlog:
            async with open_client(stdio_client(params, errlog=errlog), mode, **options) as client:
                task_status.started(client)
                await close.wait()
    finally:
        closed.set()


async def _search_round_trip(clients: list[Client], word: str) -> None:
    """Create through the last client with wait_for_index, find it through every client, delete it again."""
    made = await call(clients[-1], "create_artifact", {"name": f"about {word}", "content": f"{word} facts",
                                                       "wait_for_index": True})
    assert made["is_indexed"]
    for client in clients:
        hits = (await call(client, "query_artifacts", {"query": word, "mode": "keyword"}))["results"]
        assert [h["artifact"]["artifact_id"] for h in hits] == [made["artifact_id"]]
    await call(clients[0], "delete_artifact", {"artifact_id": made["artifact_id"]})
    assert (await call(clients[-1], "query_artifacts", {"query": word, "mode": "keyword"}))["results"] == []


async def _create_some(client: Client, who: str, n: int) -> dict[str, str]:
    """Create n artifacts concurrently; returns id -> content."""
    out: dict[str, str] = {}

    async def one(i: int) -> None:
        content = f"{who} artifact {i}"
        created = await call(client, "create_artifact", {"name": f"{who}-{i}", "content": content,
                                                         "tags": [who]})
        out[created["artifact_id"]] = content

    async with anyio.create_task_group() as tg:
        for i in range(n):
            tg.start_soon(one, i)
    return out


# resources/subscribe is the 2025-11-25 way (the SDK warns that 2026-07-28 replaced it): we test it on purpose.
@pytest.mark.filterwarnings("ignore::mcp.MCPDeprecationWarning")
async def test_three_servers_share_one_store_and_survive_the_owner(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    lock_path = data_dir / "catalog.duckdb.lock"
    params = stdio_params(data_dir, tmp_path)
    closers = [anyio.Event() for _ in range(3)]
    closed = [anyio.Event() for _ in range(3)]
    updated_uris: list[str] = []
    got_update = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, ResourceUpdatedNotification):
            updated_uris.append(str(message.params.uri))
            got_update.set()

    options: list[dict[str, Any]] = [{}, {}, {"message_handler": on_message}]
    modes = ["legacy", "auto", "legacy"]
    async with anyio.create_task_group() as tg:
        try:
            # The first server takes the store; the next two start together and forward to it.
            first = await tg.start(_hold, params, tmp_path / "stderr-0.log", modes[0], closers[0], closed[0],
                                 options[0])
            assert _lock_is_held(lock_path)
            with anyio.fail_after(TIMEOUT):
                others = []
                for n in (1, 2):
                    others.append(await tg.start(_hold, params, tmp_path / f"stderr-{n}.log", modes[n], closers[n],
                                                 closed[n], options[n]))
            clients = [first, *others]

            with anyio.fail_after(TIMEOUT):
                # Every process writes at the same time.
                made: list[dict[str, str]] = [{}, {}, {}]

                async def create(n: int) -> None:
                    made[n] = await _create_some(clients[n], f"p{n}", PER_CLIENT)

                async with anyio.create_task_group() as writers:
                    for n in range(3):
                        writers.start_soon(create, n)
                everything = {k: v for m in made for k, v in m.items()}
                assert len(everything) == 3 * PER_CLIENT

                # Each sees all of them, including those made through another process.
                for n, client in enumerate(clients):
                    page = await call(client, "list_artifacts", {"limit": 200})
                    assert page["total"] == 3 * PER_CLIENT
                    assert {a["artifact_id"] for a in page["artifacts"]} == set(everything)
                    tagged = await call(client, "list_artifacts", {"tags": [f"p{(n + 1) % 3}"]})
                    assert tagged["total"] == PER_CLIENT
                    for artifact_id, content in made[(n + 1) % 3].items():
                        got = await call(client, "get_artifact", {"artifact_id": artifact_id})
                        assert got["content"] == content
                    read = await client.read_resource(f"artifact://{next(iter(made[(n + 2) % 3]))}/content")
                    assert read.contents[0].text in made[(n + 2) % 3].values()

                # An update through a forwarder is seen by the owner, and notified to a legacy subscriber
                # connected to the third process.
                some_id = next(iter(made[0]))
                await clients[2].subscribe_resource(f"artifact://{some_id}")
                updated = await call(clients[1], "update_artifact", {"artifact_id": some_id, "content": "v2"})
                new_id = updated["artifact"]["artifact_id"]
                assert (await call(clients[0], "get_artifact", {"artifact_id": new_id}))["content"] == "v2"
                await got_update.wait()
                assert f"artifact://{some_id}" in updated_uris
                await _search_round_trip(clients, "narwhal")

            # The owner's agent quits: its server exits and one of the others takes the store over.
            closers[0].set()
            with anyio.fail_after(TIMEOUT):
                await closed[0].wait()
                # Calls made during the takeover wait for the new owner rather than failing.
                after: list[dict[str, str]] = [{}, {}]

                async def create_after(n: int) -> None:
                    after[n - 1] = await _create_some(clients[n], f"q{n}", PER_CLIENT)

                async with anyio.create_task_group() as writers:
                    for n in (1, 2):
                        writers.start_soon(create_after, n)
                new = {**after[0], **after[1]}
                assert _lock_is_held(lock_path), "nobody owns the store after the owner left"
                for n in (1, 2):
                    client = clients[n]
                    page = await call(client, "list_artifacts", {"limit": 200})
                    assert page["total"] == 3 * PER_CLIENT + 2 * PER_CLIENT
                    for artifact_id, content in {**everything, **new}.items():
                        if artifact_id == some_id:
                            continue  # replaced by version 2
                        got = await call(client, "get_artifact", {"artifact_id": artifact_id})
                        assert got["content"] == content
                    assert (await call(client, "get_artifact", {"artifact_id": new_id}))["content"] == "v2"
                # The new owner runs the index jobs and answers searches from both.
                await _search_round_trip(clients[1:], "walrus")

            # And when the second one leaves too, the last one carries on alone.
            closers[1].set()
            with anyio.fail_after(TIMEOUT):
                await closed[1].wait()
                last = await call(clients[2], "create_artifact", {"name": "last", "content": "alone"})
                got = await call(clients[2], "get_artifact", {"artifact_id": last["artifact_id"]})
                assert got["content"] == "alone"
                page = await call(clients[2], "list_artifacts", {"limit": 200})
                assert page["total"] == 5 * PER_CLIENT + 1
        finally:
            for closer in closers:
                closer.set()

    logs = [(tmp_path / f"stderr-{n}.log").read_text() for n in range(3)]
    assert "owning store" in logs[0]
    # p1 or p2 took over from p0; p2 owns the store at the end (taking over from p1 if p1 had won).
    assert "owning store" in logs[2], "the last server standing never took the store over"
    for log in logs:
        assert '"level": "error"' not in log and "Conflicting lock" not in log, log[-3000:]


def _start_raw_server(data_dir: Path, cwd: Path, errlog: Any) -> subprocess.Popen[bytes]:
    """A stdio server whose client keeps stdin open (as a live agent does) after one handshake."""
    env = server_env()
    proc = subprocess.Popen([server_command(), "serve", "--data-dir", str(data_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=errlog, cwd=cwd, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}).encode()
        + b"\n")
    proc.stdin.flush()
    return proc


async def test_sigterm_owner_with_open_stdin_hands_over(tmp_path: Path) -> None:
    """A process manager SIGTERMs the owning server while its agent still holds stdin open: the server must
    exit promptly and release the store, and the other server takes over."""
    data_dir = tmp_path / "data"
    with (tmp_path / "stderr-owner.log").open("wb") as errlog:
        owner = _start_raw_server(data_dir, tmp_path, errlog)
    try:
        assert owner.stdout is not None
        with anyio.fail_after(TIMEOUT):
            line = await anyio.to_thread.run_sync(owner.stdout.readline, abandon_on_cancel=True)
        assert json.loads(line)["id"] == 1
        assert _lock_is_held(data_dir / "catalog.duckdb.lock")
        params = stdio_params(data_dir, tmp_path)
        with (tmp_path / "stderr-other.log").open("w") as errlog2:
            async with open_client(stdio_client(params, errlog=errlog2), "auto") as client:
                with anyio.fail_after(TIMEOUT):
                    before = await call(client, "create_artifact", {"name": "before", "content": "b"})
                owner.send_signal(signal.SIGTERM)
                deadline = anyio.current_time() + 15
                while owner.poll() is None and anyio.current_time() < deadline:
                    await anyio.sleep(0.05)
                assert owner.poll() is not None, "the owner did not exit within 15 s of SIGTERM (stdin still open)"
                with anyio.fail_after(TIMEOUT):
                    after = await call(client, "create_artifact", {"name": "after", "content": "a"})
                    for created, content in ((before, "b"), (after, "a")):
                        got = await call(client, "get_artifact", {"artifact_id": created["artifact_id"]})
                        assert got["content"] == content
        assert "owning store" in (tmp_path / "stderr-other.log").read_text()
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.wait(timeout=10)
