"""Tenant isolation, property-based: artifacts in many tenants, every path probed with every other token
(MCP tools, resources, download links and the links themselves, the REST mirror).

The oracle is the grant itself: a principal sees an artifact iff one of its scope grants covers the
artifact's org/workspace/namespace, and may change it iff it also holds `write`. Whatever hypothesis
draws (which tenant writes where, which principal probes which path with which real id — ids "guessed"
from other tenants, resource_links included), anything beyond that is a leak and fails the test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from artifact_mcp.storage.access import Principal
from artifact_mcp.storage.models import Scope
from tests.conftest import TEST_EMBEDDING
from tests.support_http import bearer, create_token, mcp_http, serve_http
from tests.test_stdio import TIMEOUT

SCOPES = [Scope(org_id=o, workspace_id=w, namespace_id=n)
          for o, w, n in [("acme", "research", "main"), ("acme", "research", "lab"), ("acme", "sales", "main"),
                          ("globex", "ops", "main"), ("initech", "x", "y")]]

# principal -> (scope grants, permissions)
GRANTS: dict[str, tuple[list[str], list[str]]] = {
    "acme-admin": (["acme/*/*"], ["admin"]),
    "research-writer": (["acme/research/*"], ["write"]),
    "lab-reader": (["acme/research/lab"], ["read"]),
    "globex": (["globex/ops/main"], ["write"]),
    "initech": (["initech/x/y"], ["write"]),
    "two-orgs-reader": (["globex/*/*", "initech/x/y"], ["read"]),
}


@dataclass
class Env:
    port: int
    tokens: dict[str, str]
    principals: dict[str, Principal]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data: Path = tmp_path_factory.mktemp("isolation") / "data"
    data.mkdir()
    tokens = {name: create_token(data, name, scopes, perms) for name, (scopes, perms) in GRANTS.items()}
    principals = {name: Principal(principal_id=name, scopes=tuple(scopes), permissions=frozenset(perms))
                  for name, (scopes, perms) in GRANTS.items()}
    with serve_http(data, "--embedding-model", TEST_EMBEDDING) as port:
        yield Env(port, tokens, principals)


def _scope_args(scope: Scope) -> dict[str, str]:
    return {"org_id": scope.org_id, "workspace_id": scope.workspace_id, "namespace_id": scope.namespace_id}


async def _write(env: Env, scope: Scope, word: str) -> dict[str, Any]:
    """Create an artifact in `scope` with a writer allowed there (and wait until searchable)."""
    writer = next(n for n, p in env.principals.items() if p.sees(scope) and p.can("write"))
    async with mcp_http(env.port, bearer(env.tokens[writer])) as client:
        result = await client.call_tool("create_artifact", {
            "name": f"secret {word}", "content": f"the codeword is {word}", "thread_id": "t1",
            "wait_for_index": True, **_scope_args(scope)})
        assert not result.is_error, result.content
        return result.structured_content or {}


async def _probe(env: Env, name: str, art: dict[str, Any], word: str, home: Scope) -> None:
    principal = env.principals[name]
    may_see = principal.sees(home)
    may_write = may_see and principal.can("write")
    aid = art["artifact_id"]
    leak = f"{name} vs artifact in {home.label()}"
    async with mcp_http(env.port, bearer(env.tokens[name])) as client:
        # Every scope the prober may name (its own and the victim's), so a leak through explicit args shows too.
        for scope in {home, *[s for s in SCOPES if principal.sees(s)]}:
            args = _scope_args(scope)
            in_home = scope == home

            got = await client.call_tool("get_artifact", {"artifact_id": aid, **args})
            assert got.is_error != (may_see and in_home), f"get_artifact: {leak} via {scope.label()}"
            if got.is_error:
                assert word not in got.content[0].text

            versions = await client.call_tool("list_artifact_versions", {"artifact_id": aid, **args})
            assert versions.is_error != (may_see and in_home), f"versions: {leak}"

            jobs = await client.call_tool("list_artifact_jobs", {"artifact_id": aid, **args})
            assert jobs.is_error != (may_see and in_home), f"jobs: {leak}"

            listed = await client.call_tool("list_artifacts", {"thread_id": "t1", **args})
            ids = {a["artifact_id"] for a in (listed.structured_content or {}).get("artifacts", [])}
            assert (aid in ids) == (may_see and in_home), f"list: {leak}"

            found = await client.call_tool("query_artifacts", {"query": word, "mode": "keyword",
                                                               "include_sources": False, **args})
            hits = (found.structured_content or {}).get("results", [])
            context = (found.structured_content or {}).get("combined_context", "")
            assert any(h["artifact"]["artifact_id"] == aid for h in hits) == (may_see and in_home), f"query: {leak}"
            if not (may_see and in_home):
                assert word not in context  # (the answer's text echoes the query itself)

            changed = await client.call_tool("update_artifact", {"artifact_id": aid, "tags": [f"by-{name}"],
                                                                 **args})
            assert changed.is_error != (may_write and in_home), f"update: {leak}"

            link = await client.call_tool("get_artifact_download_url", {"artifact_id": aid, **args})
            assert link.is_error != (may_see and in_home), f"download link: {leak}"
            if not link.is_error:
                url = (link.structured_content or {})["download_url"]
                body = httpx.get(url, timeout=TIMEOUT)
                assert body.status_code == 200 and body.text == f"the codeword is {word}"

            await _probe_rest(env, name, aid, word, scope, visible=may_see and in_home,
                              writable=may_write and in_home, scope_allowed=principal.sees(scope))

        # Resources: only by id, no scope arguments at all.
        for uri in (art["uri"], f"{art['uri']}/content", f"{art['uri']}/versions"):
            try:
                read = await client.read_resource(uri)
                text = json.dumps([c.model_dump(mode="json") for c in read.contents])
                assert may_see, f"resources/read {uri}: {leak}"
                assert word in text or uri.endswith(("versions", aid))
            except Exception as exc:
                if may_see:
                    raise
                assert "not found" in str(exc).lower() and word not in str(exc)
        default = next((c for g in principal.scopes if (c := g.concrete()) is not None), None)
        if default is not None:
            uris = {r.uri for r in (await client.list_resources()).resources}
            assert (art["uri"] in uris) == (may_see and home == default), f"resources/list: {leak}"


async def _probe_rest(env: Env, name: str, aid: str, word: str, scope: Scope, *, visible: bool, writable: bool,
                      scope_allowed: bool) -> None:
    """The REST mirror with the same token: 200 only when visible; 403 for a scope outside the grants, else 404."""
    base = (f"http://127.0.0.1:{env.port}/v1/orgs/{scope.org_id}/workspaces/{scope.workspace_id}"
            f"/namespaces/{scope.namespace_id}")
    refused = 403 if not scope_allowed else 404
    async with httpx.AsyncClient(headers=bearer(env.tokens[name]), timeout=TIMEOUT) as http:
        for path in (f"/artifacts/{aid}", f"/artifacts/{aid}/versions", f"/artifacts/{aid}/jobs",
                     f"/artifacts/{aid}/download-url"):
            response = await http.get(base + path)
            assert response.status_code == (200 if visible else refused), f"REST {path}: {name} {response.text}"
            if not visible:
                assert word not in response.text
        listed = await http.get(base + "/artifacts", params={"thread_id": "t1"})
        assert listed.status_code == (200 if scope_allowed else 403)
        assert (aid in listed.text) == visible, f"REST list: {name}"
        found = await http.post(base + "/artifacts/query", json={"query": word, "mode": "keyword",
                                                                 "include_sources": False})
        assert found.status_code == (200 if scope_allowed else 403)
        assert (aid in found.text) == visible, f"REST query: {name}"
        patched = await http.patch(base + f"/artifacts/{aid}", json={"tags": [f"by-{name}"]})
        assert (patched.status_code == 200) == writable, f"REST update: {name} {patched.status_code}"


async def _unchanged_for_owner(env: Env, art: dict[str, Any], home: Scope, word: str) -> None:
    """Failed writes changed nothing: the artifact is there, with its content, only tagged by allowed writers."""
    owner = next(n for n, p in env.principals.items() if p.sees(home) and p.can("write"))
    async with mcp_http(env.port, bearer(env.tokens[owner])) as client:
        got = await client.call_tool("get_artifact", {"artifact_id": art["artifact_id"], **_scope_args(home)})
        assert not got.is_error
        body = got.structured_content or {}
        assert body["content"] == f"the codeword is {word}"
        for tag in body.get("tags") or []:
            who = tag.removeprefix("by-")
            assert env.principals[who].sees(home) and env.principals[who].can("write"), f"{who} wrote {tag}"


@settings(max_examples=6, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(homes=st.lists(st.sampled_from(SCOPES), min_size=1, max_size=2),
       probers=st.lists(st.sampled_from(sorted(GRANTS)), min_size=2, max_size=4, unique=True))
def test_no_path_leaks_across_tenants(env: Env, homes: list[Scope], probers: list[str]) -> None:
    async def run() -> None:
        with anyio.fail_after(TIMEOUT * 4):
            for home in homes:
                word = f"zq{uuid.uuid4().hex[:10]}"
                art = await _write(env, home, word)
                for name in probers:
                    await _probe(env, name, art, word, home)
                await _unchanged_for_owner(env, art, home, word)

    anyio.run(run)


def test_health_probes_carry_no_tenant_data(env: Env) -> None:
    for path in ("/healthz", "/readyz"):
        body = httpx.get(f"http://127.0.0.1:{env.port}{path}", timeout=TIMEOUT).text
        assert "acme" not in body and "globex" not in body
