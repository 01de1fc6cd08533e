"""The real `artifact-mcp serve --transport http|sse` as a subprocess on 127.0.0.1, driven over the network."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp.client.sse import sse_client
from mcp.types import TextResourceContents

from tests.conftest import call, server_env
from tests.test_stdio import PROTOCOL, TIMEOUT, open_client, server_command

pytestmark = pytest.mark.anyio

INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    """True once the port accepts connections; False if the process exited first."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"server did not accept connections on port {port} within {TIMEOUT} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _serve(tmp: Path, transport: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Start `artifact-mcp serve --transport <transport>` on a free port; stop it afterwards, whatever happens."""
    env = server_env()
    deadline = time.monotonic() + TIMEOUT
    for _attempt in range(3):  # a free port can be taken by someone else before the server binds it
        port = _free_port()
        log_path = tmp / f"stderr-{transport}-{port}.log"
        with log_path.open("wb") as errlog:
            proc = subprocess.Popen(
                [server_command(), "serve", "--transport", transport, "--host", "127.0.0.1", "--port", str(port),
                 "--data-dir", str(tmp / "data"), "--auth", "none"],  # token paths: tests/test_auth.py
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog, cwd=tmp, env=env,
            )
        try:
            if _wait_for_port(proc, port, deadline):
                yield port, proc
                return
        finally:
            _stop(proc)
    raise AssertionError(f"server could not start: {log_path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    yield from _serve(tmp_path_factory.mktemp("http"), "http")


@pytest.fixture(scope="module")
def sse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    yield from _serve(tmp_path_factory.mktemp("sse"), "sse")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_streamable_http_roundtrip(http_server: tuple[int, subprocess.Popen[bytes]], mode: str) -> None:
    port, _ = http_server
    async with open_client(f"http://127.0.0.1:{port}/mcp", mode) as client:
        assert client.protocol_version == PROTOCOL[mode]
        with anyio.fail_after(TIMEOUT):
            tools = await client.list_tools()
            assert {"create_artifact", "get_artifact", "list_artifacts"} <= {t.name for t in tools.tools}

            text = await call(client, "create_artifact", {"name": f"http-{mode}", "content": "over the wire",
                                                          "thread_id": f"thread-{mode}"})
            doc = {"mode": mode, "values": [1.5, "two", None]}
            json_art = await call(client, "create_artifact", {"name": f"json-{mode}", "content": doc,
                                                              "thread_id": f"thread-{mode}"})

            page = await call(client, "list_artifacts", {"thread_id": f"thread-{mode}"})
            assert page["total"] == 2
            assert {a["artifact_id"] for a in page["artifacts"]} == {text["artifact_id"], json_art["artifact_id"]}
            everything = await call(client, "list_artifacts", {})
            assert everything["total"] >= 2

            got = await call(client, "get_artifact", {"artifact_id": text["artifact_id"]})
            assert got["content"] == "over the wire"
            got = await call(client, "get_artifact", {"artifact_id": json_art["artifact_id"]})
            assert got["content"] == doc

            read = await client.read_resource(f"artifact://{text['artifact_id']}/content")
            [contents] = read.contents
            assert isinstance(contents, TextResourceContents)
            assert contents.text == "over the wire"
            read = await client.read_resource(f"artifact://{json_art['artifact_id']}/content")
            assert json.loads(read.contents[0].text) == doc
            meta = await client.read_resource(f"artifact://{json_art['artifact_id']}")
            assert json.loads(meta.contents[0].text)["name"] == f"json-{mode}"


def _post(port: int, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("POST", "/mcp", body=json.dumps(INITIALIZE), headers={
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers,
        })
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_dns_rebinding_protection(http_server: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, _ = http_server
    status, body = _post(port, {"Host": "evil.example"})
    assert status == 421, body
    status, body = _post(port, {"Origin": "http://evil.example"})
    assert status == 403, body
    # The same request from a local origin is served.
    status, body = _post(port, {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}"})
    assert status == 200, body
    assert b'"protocolVersion"' in body


async def test_sse_transport(sse_server: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, _ = sse_server
    created_ids = []
    for round_ in range(2):  # two connections in a row: the store stays open between SSE sessions
        async with open_client(sse_client(f"http://127.0.0.1:{port}/sse"), "legacy") as client:
            assert client.protocol_version == PROTOCOL["legacy"]
            with anyio.fail_after(TIMEOUT):
                created = await call(client, "create_artifact", {"name": f"sse-{round_}", "content": {"n": round_}})
                created_ids.append(created["artifact_id"])
                for i, artifact_id in enumerate(created_ids):
                    got = await call(client, "get_artifact", {"artifact_id": artifact_id})
                    assert got["content"] == {"n": i}
                read = await client.read_resource(f"artifact://{created['artifact_id']}/content")
                assert json.loads(read.contents[0].text) == {"n": round_}
                page = await call(client, "list_artifacts", {})
                assert page["total"] == round_ + 1
