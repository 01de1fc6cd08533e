"""Authentication and authorization over real HTTP: tokens from the CLI, 401 / 403 paths, principal-scoped
resources and notifications, revocation and expiry taking effect in a running server."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ResourceUpdated

from tests.conftest import TEST_EMBEDDING
from tests.support_http import INITIALIZE, Server, bearer, cli, create_token, mcp_http, serve_http
from tests.test_stdio import TIMEOUT, open_client

pytestmark = pytest.mark.anyio

@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("auth") / "data"
    data.mkdir()
    tokens = {
        "alice": create_token(data, "alice", ["acme/*/*"], ["write"], "acme/research/main"),
        "reader": create_token(data, "reader", ["acme/research/main"], ["read"]),
        "bob": create_token(data, "bob", ["globex/ops/main"], ["admin"]),
        "wild": create_token(data, "wild", ["acme/*/*"], ["read"]),  # no default scope
    }
    with serve_http(data, "--embedding-model", TEST_EMBEDDING) as port:
        yield Server(data, port, tokens)


def _raw_initialize(server: Server, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/mcp", json=INITIALIZE, timeout=TIMEOUT, headers={
        "Accept": "application/json, text/event-stream", **headers})


def test_token_cli_stores_only_hashes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = create_token(data, "svc", ["acme/*"], ["read", "write"])
    assert token.startswith("amcp_")
    path = data / "tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = path.read_text()
    secret = token.split("_", 2)[2]  # the secret itself may contain "_" (URL-safe base64)
    assert secret not in stored and token not in stored
    listed = cli(data, "token", "list")
    assert listed.returncode == 0
    [entry] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert entry["principal_id"] == "svc" and entry["scopes"] == ["acme/*/*"]
    assert entry["permissions"] == ["read", "write"] and "secret_hash" not in entry and secret not in listed.stdout
    done = cli(data, "token", "revoke", entry["token_id"])
    assert done.returncode == 0
    assert json.loads(cli(data, "token", "list").stdout)["revoked_at"] is not None
    unknown = cli(data, "token", "revoke", "nope")
    assert unknown.returncode == 2 and "no token 'nope'" in unknown.stderr
    bad = cli(data, "token", "create", "--principal", "x", "--scope", "acme/a b/c", "--permission", "read")
    assert bad.returncode == 2 and "is not org[/workspace[/namespace]]" in bad.stderr


def test_no_or_bad_token_is_401(server: Server) -> None:
    for headers in ({}, bearer("amcp_000000000000_nope"), bearer("garbage"), {"Authorization": "Basic eDp5"},
                    {"X-API-Key": "amcp_deadbeef0000_wrong"}):
        response = _raw_initialize(server, headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer"), headers
    assert _raw_initialize(server, bearer(server.tokens["alice"])).status_code == 200
    assert _raw_initialize(server, {"X-API-Key": server.tokens["alice"]}).status_code == 200
    # Health probes need no token and say nothing about tenants.
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").json()["status"] == "ready"


async def test_principal_scope_and_permissions(server: Server) -> None:
    async with mcp_http(server.port, bearer(server.tokens["alice"])) as alice:
        created = await alice.call_tool("create_artifact", {"name": "plan", "content": "acme plan",
                                                            "created_by": "someone-else"})
        art = created.structured_content
        assert not created.is_error and art is not None
        # Scope defaults from the token; created_by records the principal, not what the caller claims.
        assert (art["org_id"], art["workspace_id"], art["namespace_id"]) == ("acme", "research", "main")
        assert art["created_by"] == "alice"
        other = await alice.call_tool("create_artifact", {"name": "x", "content": "y", "org_id": "globex"})
        assert other.is_error
        assert "no access to scope globex/research/main" in other.content[0].text
        promote = await alice.call_tool("promote_artifact", {"artifact_id": art["artifact_id"]})
        assert promote.is_error and "needs the 'admin' permission" in promote.content[0].text
        sibling = await alice.call_tool("create_artifact", {"name": "s", "content": "sales", "workspace_id": "sales"})
        assert not sibling.is_error

    async with mcp_http(server.port, bearer(server.tokens["reader"])) as reader:
        got = await reader.call_tool("get_artifact", {"artifact_id": art["artifact_id"]})
        assert not got.is_error and got.structured_content["content"] == "acme plan"
        write = await reader.call_tool("update_artifact", {"artifact_id": art["artifact_id"], "content": "mine"})
        assert write.is_error and "needs the 'write' permission" in write.content[0].text
        gone = await reader.call_tool("delete_artifact", {"artifact_id": art["artifact_id"]})
        assert gone.is_error
        listed = await reader.call_tool("list_artifacts", {"workspace_id": "sales"})
        assert listed.is_error and "no access to scope acme/sales/main" in listed.content[0].text

    async with mcp_http(server.port, bearer(server.tokens["wild"])) as wild:
        no_default = await wild.call_tool("list_artifacts", {})
        assert no_default.is_error and "pass org_id, workspace_id and namespace_id" in no_default.content[0].text
        explicit = await wild.call_tool("list_artifacts", {"org_id": "acme", "workspace_id": "sales",
                                                           "namespace_id": "main"})
        assert not explicit.is_error and explicit.structured_content["total"] == 1

    async with mcp_http(server.port, bearer(server.tokens["bob"])) as bob:
        # Another org's id reads like an unknown one, through tools and resources alike.
        got = await bob.call_tool("get_artifact", {"artifact_id": art["artifact_id"]})
        assert got.is_error and "no artifact" in got.content[0].text
        with pytest.raises(Exception, match="not found"):
            await bob.read_resource(art["uri"])
        resources = await bob.list_resources()
        assert resources.resources == []


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_notifications_stay_in_scope(server: Server, mode: str) -> None:
    """A subscriber only hears about artifacts its principal may see, even when it names another tenant's URI."""
    async with mcp_http(server.port, bearer(server.tokens["alice"])) as alice:
        victim = (await alice.call_tool("create_artifact", {"name": f"v-{mode}", "content": "one"})).structured_content
    assert victim is not None
    uri = victim["uri"]

    if mode == "legacy":
        received: list[str] = []

        async def on_message(message: object) -> None:
            root = getattr(message, "root", message)
            params = getattr(root, "params", None)
            if getattr(root, "method", "") == "notifications/resources/updated" and params is not None:
                received.append(str(params.uri))

        for name in ("bob", "reader"):
            async with httpx.AsyncClient(headers=bearer(server.tokens[name]), timeout=TIMEOUT) as http:
                transport = streamable_http_client(f"{server.url}/mcp", http_client=http)
                async with open_client(transport, "legacy", message_handler=on_message) as client:
                    await client.subscribe_resource(uri)
                    async with mcp_http(server.port, bearer(server.tokens["alice"])) as alice:
                        await alice.call_tool("update_artifact", {"artifact_id": victim["artifact_id"],
                                                                  "tags": [name]})
                    await anyio.sleep(1.0)
            if name == "bob":
                assert received == [], "another org's subscriber heard of the change"
            else:
                assert uri in received, "a subscriber who may read the artifact missed the change"
        return

    async with (
        mcp_http(server.port, bearer(server.tokens["bob"])) as bob,
        mcp_http(server.port, bearer(server.tokens["reader"])) as reader,
        bob.listen(resource_subscriptions=[uri], resources_list_changed=True) as bob_sub,
        reader.listen(resource_subscriptions=[uri]) as reader_sub,
    ):
        async with mcp_http(server.port, bearer(server.tokens["alice"])) as alice:
            await alice.call_tool("update_artifact", {"artifact_id": victim["artifact_id"], "tags": ["m"]})
            await alice.call_tool("create_artifact", {"name": "more", "content": "list changes"})
        with anyio.fail_after(TIMEOUT):
            event = await reader_sub.__anext__()
        assert isinstance(event, ResourceUpdated) and event.uri == uri
        with anyio.move_on_after(1.0) as waited:
            leaked = await bob_sub.__anext__()
            pytest.fail(f"another org's listener received {leaked!r}")
        assert waited.cancelled_caught


def test_revoked_and_expired_tokens_stop_working(server: Server) -> None:
    token = create_token(server.data_dir, "temp", ["acme/*/*"], ["read"], "acme/research/main")
    assert _raw_initialize(server, bearer(token)).status_code == 200
    token_id = token.split("_")[1]
    assert cli(server.data_dir, "token", "revoke", token_id).returncode == 0
    assert _raw_initialize(server, bearer(token)).status_code == 401  # the running server re-reads the file

    short = create_token(server.data_dir, "short", ["acme/*/*"], ["read"], "acme/research/main", "--expires-in", "1")
    assert _raw_initialize(server, bearer(short)).status_code == 200
    time.sleep(1.2)
    assert _raw_initialize(server, bearer(short)).status_code == 401


async def test_sse_transport_requires_a_token_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = create_token(data, "sse-user", ["acme/research/main"], ["read"])
    with serve_http(data, "--embedding-model", TEST_EMBEDDING, transport="sse") as port:
        base = f"http://127.0.0.1:{port}"
        for path, method in (("/sse", "GET"), ("/messages/?session_id=0", "POST")):
            response = httpx.request(method, base + path, timeout=TIMEOUT)
            assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer"), path
        async with open_client(sse_client(f"{base}/sse", headers=bearer(token)), "legacy") as client:
            listed = await client.call_tool("list_artifacts", {})
            assert not listed.is_error and (listed.structured_content or {})["total"] == 0
            denied = await client.call_tool("create_artifact", {"name": "x", "content": "y"})
            assert denied.is_error and "needs the 'write' permission" in denied.content[0].text
