"""The real `artifact-mcp serve --transport http|sse` as a subprocess on 127.0.0.1, driven over the network."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import anyio
import pytest
from mcp.client.sse import sse_client
from mcp.types import TextResourceContents

from tests.conftest import call
from tests.support_http import INITIALIZE, serve_http
from tests.test_stdio import PROTOCOL, TIMEOUT, open_client

pytestmark = pytest.mark.anyio

@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


# The transports themselves, without tokens; token paths are in tests/test_auth.py.
@pytest.fixture(scope="module")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with serve_http(tmp_path_factory.mktemp("http") / "data", "--auth", "none") as port:
        yield port


@pytest.fixture(scope="module")
def sse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with serve_http(tmp_path_factory.mktemp("sse") / "data", "--auth", "none", transport="sse") as port:
        yield port


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_streamable_http_roundtrip(http_server: int, mode: str) -> None:
    port = http_server
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


def test_dns_rebinding_protection(http_server: int) -> None:
    port = http_server
    status, body = _post(port, {"Host": "evil.example"})
    assert status == 421, body
    status, body = _post(port, {"Origin": "http://evil.example"})
    assert status == 403, body
    # The same request from a local origin is served.
    status, body = _post(port, {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}"})
    assert status == 200, body
    assert b'"protocolVersion"' in body


async def test_sse_transport(sse_server: int) -> None:
    port = sse_server
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
