"""The MCP App viewer (MCP Apps extension, spec 2026-01-26): the ui:// resource, the tools' `_meta.ui.resourceUri`,
and the view rendering real tool results in Chromium inside a test host page that speaks the extension's
postMessage protocol (tests/support_app_host.py) and forwards the view's tools/call to the real server."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from mcp import Client, MCPError
from mcp.client import advertise
from mcp.server import MCPServer
from playwright.sync_api import Browser, FrameLocator, expect

from artifact_mcp.server.runtime import Runtime
from artifact_mcp.tools.viewer import APP_MIME_TYPE, EXTENSION_ID, VIEWER_URI
from tests.conftest import call
from tests.support_app_host import AppHost, app_host, wire
from tests.support_browser import chromium

VIEWER_TOOLS = {"get_artifact", "query_artifacts", "list_artifact_versions"}


def apps_host_client(app: MCPServer, mode: str = "auto") -> Client:
    """A client that declares the MCP Apps extension, as Claude and other hosts that render views do."""
    return Client(app, mode=mode, extensions=[advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})])


# --- protocol: the resource, the tool links, unchanged results ---------------------------------------------


@pytest.mark.anyio
async def test_viewer_listed_for_apps_hosts_and_readable(app_runtime: tuple[MCPServer, Runtime], era: str) -> None:
    app, _ = app_runtime
    async with apps_host_client(app, era) as host:
        art = await call(host, "create_artifact", {"name": "a", "content": "x"})
        listed = (await host.list_resources()).resources
        assert [r.uri for r in listed] == [VIEWER_URI, art["uri"]]  # the viewer leads the first page
        viewer = listed[0]
        assert viewer.mime_type == APP_MIME_TYPE == "text/html;profile=mcp-app"
        assert viewer.name == "artifact-viewer" and viewer.description

        read = await host.read_resource(VIEWER_URI)
        (contents,) = read.contents
        assert contents.uri == VIEWER_URI and contents.mime_type == APP_MIME_TYPE
        html = contents.text
        assert html.startswith("<!DOCTYPE html>") and "</html>" in html
        # No external origin: everything inline, and the CSP declares no domains.
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
        assert contents.meta == {"ui": {"csp": {"connectDomains": [], "resourceDomains": []},
                                        "prefersBorder": True}}
        if era == "auto":  # the 2026-07-28 capabilities carry SEP-2133 extensions (2025-11-25's have no field)
            assert EXTENSION_ID in (host.server_capabilities.extensions or {})

        with pytest.raises(MCPError, match="not found"):
            await host.read_resource("ui://artifact-mcp/nope")


@pytest.mark.anyio
async def test_plain_clients_unaffected(client: Client) -> None:
    """A client without the extension: resources/list lists only its artifacts, results are as they were, and it
    can still read the viewer (the link on the tool definition must never 404)."""
    art = await call(client, "create_artifact", {"name": "plain", "content": "hello"})
    assert [r.uri for r in (await client.list_resources()).resources] == [art["uri"]]
    result = await client.call_tool("get_artifact", {"artifact_id": art["artifact_id"]})
    assert not result.is_error and not any(k.startswith("ui") for k in (result.meta or {}))
    assert result.content[0].type == "text" and "hello" in result.content[0].text
    assert result.structured_content is not None and result.structured_content["content"] == "hello"
    assert (await client.read_resource(VIEWER_URI)).contents[0].mime_type == APP_MIME_TYPE


@pytest.mark.anyio
async def test_tools_link_the_viewer(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    linked = {name for name, t in tools.items() if t.meta and "ui" in t.meta}
    assert linked == VIEWER_TOOLS
    for name in VIEWER_TOOLS:
        meta = tools[name].meta
        assert meta is not None
        assert meta["ui"] == {"resourceUri": VIEWER_URI}  # visibility omitted: model and app
        assert meta["ui/resourceUri"] == VIEWER_URI  # the deprecated flat key, for older hosts


# --- the view in Chromium ---------------------------------------------------------------------------------------


class Live:
    """A real in-process MCP session (an Apps host's) run on a portal thread, called from sync browser tests."""

    def __init__(self, portal: BlockingPortal, client: Client) -> None:
        self.portal, self.client = portal, client
        self.tools = {t.name: t for t in portal.call(client.list_tools).tools}
        (contents,) = portal.call(client.read_resource, VIEWER_URI).contents
        self.html, self.resource_meta = contents.text, contents.meta

    def result(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return wire(self.portal.call(self.client.call_tool, name, args))

    def ok(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        result = self.result(name, args)
        assert not result.get("isError"), result
        return result["structuredContent"]

    def read(self, uri: str) -> dict[str, Any]:
        return wire(self.portal.call(self.client.read_resource, uri))

    def show(self, host: AppHost, name: str, args: dict[str, Any]) -> tuple[FrameLocator, dict[str, Any]]:
        """Call the tool for real, then hand the view its input and result the way a host does."""
        result = self.result(name, args)
        tool = wire(self.tools[name])
        frame = host.show(html=self.html, resource_meta=self.resource_meta, tool=tool, tool_input=args,
                          tool_result=result)
        return frame, result


@pytest.fixture
def live(app_runtime: tuple[MCPServer, Runtime]) -> Iterator[Live]:
    app, _ = app_runtime
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(apps_host_client(app)) as client:
        yield Live(portal, client)


@pytest.fixture(params=["iframe", "proxy"])
def sandbox(request: pytest.FixtureRequest) -> str:
    """How the host loads the view: a sandboxed iframe (desktop hosts) or the spec's sandbox proxy (web hosts)."""
    return request.param


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


def _handshake_in_order(host: AppHost) -> None:
    sent, received = host.methods("out"), host.methods("in")
    assert received[0] == "ui/initialize" and "ui/notifications/initialized" in received
    # The host's first message answers ui/initialize; the data notifications follow the view's initialized.
    assert sent[0] is None
    assert sent[1:3] == ["ui/notifications/tool-input", "ui/notifications/tool-result"]
    assert "ui/notifications/size-changed" in received


def test_view_renders_markdown_artifact(live: Live, browser: Browser, sandbox: str) -> None:
    text = ("# Quarterly report\n\nRevenue **grew** by 12% in `Q3`.\n\n- alpha\n- beta\n\n"
            "| region | sales |\n|---|---|\n| north | 10 |\n\n```python\nprint('hi')\n```\n\n> a quote\n")
    art = live.ok("create_artifact", {"name": "Q3 report", "content": text, "mime_type": "text/markdown",
                                      "tags": ["finance"]})
    with app_host(browser, live.result, live.read, sandbox) as host:
        view, result = live.show(host, "get_artifact", {"artifact_id": art["artifact_id"]})
        expect(view.locator("h1.title")).to_have_text("Q3 report")
        body = view.locator(".body")
        expect(body.locator("h1")).to_have_text("Quarterly report")
        expect(body.locator("strong")).to_have_text("grew")
        expect(body.locator("p code")).to_have_text("Q3")
        expect(body.locator("ul > li")).to_have_text(["alpha", "beta"])
        expect(body.locator("table td")).to_have_text(["north", "10"])
        expect(body.locator("pre code")).to_have_text("print('hi')")
        expect(body.locator("blockquote")).to_have_text("a quote")
        expect(view.locator(".tag")).to_have_text(["finance"])
        expect(view.locator(".meta .id")).to_have_text(art["artifact_id"])
        assert result["structuredContent"]["content"] == text
        _handshake_in_order(host)
        # The host context reached the view: its theme and style variables are applied.
        assert view.locator("html").get_attribute("data-theme") == "dark"
        assert view.locator("html").get_attribute("data-kind") == "artifact"
        # Never the host's origin: opaque in the sandboxed iframe, the proxy's own origin behind the proxy.
        origin = view.locator("html").evaluate("() => window.origin")
        assert origin == ("http://sandbox.test" if sandbox == "proxy" else "null")
        assert host.page.evaluate("() => window.origin") == "http://host.test"


def test_view_renders_json_artifact(live: Live, browser: Browser, sandbox: str) -> None:
    content = {"model": "m1", "metrics": {"f1": 0.91, "recall": [0.8, 0.85]}, "ok": True}
    art = live.ok("create_artifact", {"name": "eval results", "content": content})
    with app_host(browser, live.result, live.read, sandbox) as host:
        view, _ = live.show(host, "get_artifact", {"artifact_id": art["artifact_id"]})
        expect(view.locator("h1.title")).to_have_text("eval results")
        pre = view.locator(".body pre.json")
        expect(pre).to_contain_text('"f1": 0.91')
        assert json.loads(pre.inner_text()) == content
        assert pre.inner_text() == json.dumps(content, indent=2)  # pretty-printed like JSON.stringify(v, null, 2)

        # The host's later messages: a theme change, then teardown (a request the view must answer).
        expect(view.locator("html")).to_have_attribute("data-theme", "dark")
        host.send({"method": "ui/notifications/host-context-changed", "params": {"theme": "light"}})
        expect(view.locator("html")).to_have_attribute("data-theme", "light")
        host.send({"id": 99, "method": "ui/resource-teardown", "params": {"reason": "test over"}})
        host.page.wait_for_function("() => window.hostLog.some(e => e.dir === 'in' && e.msg.id === 99)")
        (answer,) = [e["msg"] for e in host.log() if e["dir"] == "in" and e["msg"].get("id") == 99]
        assert answer == {"jsonrpc": "2.0", "id": 99, "result": {}}


HOSTILE = ("<script>window.parent.postMessage({pwned: 'script'}, '*')</script>\n\n"
           "<img src=x onerror=\"window.pwned = 1; window.parent.postMessage({pwned: 'img'}, '*')\">\n\n"
           "[click me](javascript:window.parent.postMessage({pwned:'link'},'*'))")


@pytest.mark.parametrize("mime", ["text/markdown", "text/html", "text/plain"])
def test_view_never_executes_artifact_content(live: Live, browser: Browser, sandbox: str, mime: str) -> None:
    art = live.ok("create_artifact", {"name": "<b onmouseover=alert(1)>evil</b>", "content": HOSTILE,
                                      "mime_type": mime})
    with app_host(browser, live.result, live.read, sandbox) as host:
        view, _ = live.show(host, "get_artifact", {"artifact_id": art["artifact_id"]})
        expect(view.locator("h1.title")).to_have_text("<b onmouseover=alert(1)>evil</b>")  # as text
        body = view.locator(".body")
        expect(body).to_contain_text("<script>window.parent.postMessage")
        expect(body).to_contain_text('<img src=x onerror="window.pwned = 1')
        assert view.locator("script").count() == 1  # the view's own
        assert view.locator("img, b, .body a").count() == 0
        if mime == "text/markdown":
            expect(body).to_contain_text("click me")  # a javascript: link stays text
        # Had the <img> been parsed, its blocked load would fire onerror now; give it the chance.
        host.page.wait_for_timeout(300)
        assert view.locator("html").evaluate("() => window.pwned") is None
        assert not [e for e in host.log() if isinstance(e["msg"], dict) and "pwned" in e["msg"]]
        assert not [e for e in host.log() if "pwned" in json.dumps(e["msg"]) and e["dir"] == "in"]


async def _indexed(client: Client, artifact_ids: list[str]) -> None:
    with anyio.fail_after(60):
        for artifact_id in artifact_ids:
            while not (await call(client, "get_artifact", {"artifact_id": artifact_id}))["is_indexed"]:
                await anyio.sleep(0.05)


async def _indexed_in(client: Client, artifact_id: str, scope: dict[str, str]) -> None:
    with anyio.fail_after(60):
        while not (await call(client, "get_artifact", {"artifact_id": artifact_id, **scope}))["is_indexed"]:
            await anyio.sleep(0.05)


def test_view_shows_query_results_as_cards(live: Live, browser: Browser, sandbox: str) -> None:
    ids = [live.ok("create_artifact", {"name": name, "content": body})["artifact_id"] for name, body in [
        ("Solar notes", "Solar panels convert sunlight into electricity; solar farms need land."),
        ("Wind notes", "Wind turbines and solar panels both feed the grid."),
        ("Cooking", "Bake the bread at 220 degrees for forty minutes."),
    ]]
    # A knowledge source promoted from another namespace: its card opens it in its own scope.
    elsewhere = {"namespace_id": "team-a"}
    source = live.ok("create_artifact", {"name": "Solar handbook", "content": "Solar panels and electricity, "
                                         "explained: photovoltaic solar panels make electricity.", **elsewhere})
    live.ok("promote_artifact", {"artifact_id": source["artifact_id"], **elsewhere})
    live.portal.call(_indexed, live.client, ids)
    live.portal.call(_indexed_in, live.client, source["artifact_id"], elsewhere)
    args = {"query": "solar panels electricity", "mode": "keyword"}
    with app_host(browser, live.result, live.read, sandbox) as host:
        view, result = live.show(host, "query_artifacts", args)
        hits = result["structuredContent"]["results"]
        assert len(hits) >= 3 and any(h["from_source"] for h in hits)
        cards = view.locator("article.card")
        expect(cards).to_have_count(len(hits))
        expect(cards.locator(".name")).to_have_text([h["artifact"]["name"] for h in hits])
        expect(cards.locator(".score")).to_have_text([f"{h['score']:.3f}" for h in hits])
        expect(cards.first.locator(".chunk")).to_contain_text(hits[0]["matched_chunk"][:40])
        total = result["structuredContent"]["total_results"]
        expect(view.locator(".meta").first).to_contain_text(f"{len(hits)} of {total} results")
        expect(view.locator(f"article.card[data-artifact-id={source['artifact_id']}]")).to_contain_text(
            "knowledge source")

        # Opening a card asks the host for get_artifact (tools/call), which the host forwards to the server.
        for hit in (hits[0], next(h for h in hits if h["from_source"])):
            art = hit["artifact"]
            view.locator(f"article.card[data-artifact-id={art['artifact_id']}] button.open").click()
            expect(view.locator("h1.title")).to_have_text(art["name"])
            body = next(b for n, b in [("Solar notes", "sunlight"), ("Wind notes", "grid"),
                                       ("Solar handbook", "photovoltaic")] if n == art["name"])
            expect(view.locator(".body")).to_contain_text(body)
            assert host.calls[-1] == ("get_artifact", {"artifact_id": art["artifact_id"], "org_id": art["org_id"],
                                                       "workspace_id": art["workspace_id"],
                                                       "namespace_id": art["namespace_id"]})
            view.locator("button.back").click()
            expect(view.locator("article.card")).to_have_count(len(hits))
        assert host.calls[-1][1]["namespace_id"] == "team-a"


def test_view_diffs_two_versions(live: Live, browser: Browser, sandbox: str) -> None:
    v1 = live.ok("create_artifact", {"name": "plan", "content": "step one\nstep two\nstep three\n"})
    v2 = live.ok("update_artifact", {"artifact_id": v1["artifact_id"],
                                     "content": "step one\nstep 2, revised\nstep three\nstep four\n"})["artifact"]
    with app_host(browser, live.result, live.read, sandbox) as host:
        view, result = live.show(host, "list_artifact_versions", {"artifact_id": v2["artifact_id"]})
        assert [v["version"] for v in result["structuredContent"]["versions"]] == [1, 2]
        expect(view.locator("table.versions tbody tr")).to_have_count(2)
        out = view.locator(".diff-out[data-ready=true]")
        expect(out.locator(".diffstat")).to_have_text("v1 → v2: +2 -1")
        expect(out.locator(".diff .del")).to_have_text(["- step two"])
        expect(out.locator(".diff .add")).to_have_text(["+ step 2, revised", "+ step four"])
        expect(out.locator(".diff .ctx").first).to_have_text("  step one")
        # The view fetched both versions' content through the host.
        fetched = sorted(args["artifact_id"] for name, args in host.calls if name == "get_artifact")
        assert fetched == sorted([v1["artifact_id"], v2["artifact_id"]])

        # Choosing another pair re-diffs: v2 against itself is identical.
        view.locator("select[name=from]").select_option(v2["artifact_id"])
        expect(view.locator(".diff-out .diffstat")).to_have_text("v2 → v2: +0 -0 (identical content)")


def test_view_shows_tool_errors(live: Live, browser: Browser, sandbox: str) -> None:
    with app_host(browser, live.result, live.read, sandbox) as host:
        view, result = live.show(host, "get_artifact", {"artifact_id": "art_" + "0" * 32})
        assert result["isError"] is True
        expect(view.locator(".error")).to_contain_text("art_" + "0" * 32)


def test_view_versions_of_a_binary_file(live: Live, browser: Browser) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    v1 = live.ok("upload_artifact", {"name": "chart.png", "data_base64": base64.b64encode(png).decode()})
    v2 = live.ok("update_artifact", {"artifact_id": v1["artifact_id"],
                                     "data_base64": base64.b64encode(png + b"more").decode()})["artifact"]
    assert v2["version"] == 2
    with app_host(browser, live.result, live.read) as host:
        view, _ = live.show(host, "list_artifact_versions", {"artifact_id": v2["artifact_id"]})
        expect(view.locator(".diff-out[data-ready=true] .status")).to_contain_text("Neither version has text")
        assert len(host.calls) == 2
