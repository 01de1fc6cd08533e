"""2026-07-28 is stateless: two `artifact-mcp serve --transport http` processes on one data directory (the first
owns the DuckDB store, the second forwards to it) behind one round-robin address answer any request, whichever
process gets it. Auth is on: one token from the CLI, read by both processes from the same tokens file."""

from __future__ import annotations

import uuid
from collections import defaultdict
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client
from mcp.types import TextResourceContents

from tests.conftest import TEST_EMBEDDING, call
from tests.support_http import bearer, create_token, free_port, mcp_http, serve_http
from tests.support_proxy import RoundRobin, round_robin_proxy
from tests.test_stdio import TIMEOUT

pytestmark = pytest.mark.anyio

SCOPE = {"org_id": "acme", "workspace_id": "research", "namespace_id": "main"}
TOOLS = ("create_artifact", "get_artifact", "list_artifacts", "query_artifacts", "update_artifact",
         "list_artifact_versions")


def _backends_per_call(proxy: RoundRobin) -> dict[str, set[int]]:
    seen: dict[str, set[int]] = defaultdict(set)
    for r in proxy.log:
        seen[r.mcp_name if r.mcp_method == "tools/call" else str(r.mcp_method)].add(r.backend)
    return seen


async def _round(client: Client, i: int, thread: str) -> None:
    """One create → read back → list → search → new version → read back, each call on whichever process."""
    word = f"zebra{uuid.uuid4().hex[:8]}"
    text = f"round {i}: field notes on the {word} migration"
    created = await call(client, "create_artifact", {"name": f"notes {i}", "content": text, "thread_id": thread,
                                                     "tags": ["stateless"]})
    aid = created["artifact_id"]
    assert {k: created[k] for k in SCOPE} == SCOPE  # the token's default scope, resolved per request
    assert created["created_by"] == "alice"
    got = await call(client, "get_artifact", {"artifact_id": aid})
    assert got["content"] == text and got["version"] == 1
    listed = await call(client, "list_artifacts", {"thread_id": thread, "limit": 200})
    assert aid in [a["artifact_id"] for a in listed["artifacts"]]
    assert listed["total"] == i + 1
    with anyio.fail_after(TIMEOUT):  # the owner's background job indexes it; polled through both processes
        while not (await call(client, "get_artifact", {"artifact_id": aid}))["is_indexed"]:
            await anyio.sleep(0.05)
    found = await call(client, "query_artifacts", {"query": word, "thread_id": thread, "mode": "keyword"})
    assert [h["artifact"]["artifact_id"] for h in found["results"]][:1] == [aid]
    updated = await call(client, "update_artifact", {"artifact_id": aid, "content": text + " (revised)",
                                                     "expected_version": 1})
    new_id = updated["artifact"]["artifact_id"]
    assert updated["new_version"] and updated["artifact"]["version"] == 2
    latest = await call(client, "get_artifact", {"artifact_id": new_id})
    assert latest["content"] == text + " (revised)"
    versions = await call(client, "list_artifact_versions", {"artifact_id": aid})
    assert [v["version"] for v in versions["versions"]] == [1, 2]
    read = await client.read_resource(f"artifact://{new_id}/content")
    assert isinstance(read.contents[0], TextResourceContents) and read.contents[0].text == text + " (revised)"


async def test_two_processes_behind_one_address_answer_every_request(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    token = create_token(data, "alice", ["acme/*/*"], ["write"], "acme/research/main")
    front = free_port()  # the one address; download links name it too
    args = ("--embedding-model", TEST_EMBEDDING, "--public-url", f"http://127.0.0.1:{front}")
    with serve_http(data, *args) as owner, serve_http(data, *args) as forwarder:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            roles = [(await http.get(f"http://127.0.0.1:{p}/readyz")).json() for p in (owner, forwarder)]
        assert [r["owner"] for r in roles] == [True, False], roles

        async with round_robin_proxy([owner, forwarder], front) as (port, proxy):
            async with mcp_http(port, bearer(token), mode="2026-07-28") as client:
                thread = f"t-{uuid.uuid4().hex[:8]}"
                # Rounds until every kind of call has been answered by both processes (strict alternation
                # would otherwise pin a call to one process when a round has an even number of requests).
                for i in range(6):
                    await _round(client, i, thread)
                    seen = _backends_per_call(proxy)
                    if all(seen[name] == {owner, forwarder} for name in (*TOOLS, "resources/read")):
                        break
                # A keyset cursor minted by one process is honoured by the other (pages of 1 alternate).
                everything = await call(client, "list_artifacts", {"thread_id": thread, "limit": 200})
                walked, cursor = [], None
                while True:
                    page = await call(client, "list_artifacts", {"thread_id": thread, "limit": 1,
                                                                 **({"cursor": cursor} if cursor else {})})
                    walked += [a["artifact_id"] for a in page["artifacts"]]
                    if not page["has_more"]:
                        break
                    cursor = page["next_cursor"]
                assert walked == [a["artifact_id"] for a in everything["artifacts"]] and len(walked) == i + 1
                routed = _backends_per_call(proxy)
                mcp_log = list(proxy.log)
                # A signed download link made by one process is served by either (its key is in the store).
                link = await call(client, "get_artifact_download_url", {"artifact_id": walked[0]})
                expected = (await call(client, "get_artifact", {"artifact_id": walked[0]}))["content"]

            assert all(r.status < 400 for r in mcp_log), [r for r in mcp_log if r.status >= 400]
            assert all(r.method == "POST" for r in mcp_log), "a stateless client needs no GET stream or DELETE"
            for name in (*TOOLS, "resources/read"):
                assert routed[name] == {owner, forwarder}, (name, dict(routed))

            assert link["download_url"].startswith(f"http://127.0.0.1:{front}/download/"), link
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                before = len(proxy.log)
                for _ in range(2):
                    got = await http.get(link["download_url"])
                    assert got.status_code == 200 and got.text == expected
                assert {r.backend for r in proxy.log[before:]} == {owner, forwarder}

            # Both processes check the token (same tokens file): no token is 401 from either.
            async with httpx.AsyncClient(timeout=TIMEOUT) as http:
                before = len(proxy.log)
                for _ in range(2):
                    r = await http.post(f"http://127.0.0.1:{port}/mcp", json={"jsonrpc": "2.0", "id": 1,
                                                                              "method": "tools/list"})
                    assert r.status_code == 401
                assert {r.backend for r in proxy.log[before:]} == {owner, forwarder}
