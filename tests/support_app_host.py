"""A test MCP Apps host: a web page that renders a `ui://` view the way hosts do (MCP Apps extension, spec
revision 2026-01-26) and forwards the view's requests to the real server.

Two ways of loading the view, both with the Content-Security-Policy the spec makes hosts build from the resource's
`_meta.ui.csp` injected into its head: "iframe", an iframe sandboxed `allow-scripts` only (an opaque origin: no
access to the host page, its storage or cookies), as desktop hosts do; and "proxy", the spec's web-host layout: a
sandbox proxy page on another origin (`allow-scripts allow-same-origin`) that announces
`ui/notifications/sandbox-proxy-ready`, receives the HTML in `ui/notifications/sandbox-resource-ready`, renders it
in an inner iframe and relays every other message both ways. A host-side script speaks the extension's postMessage
JSON-RPC: it answers `ui/initialize` (host info, capabilities, context with the tool's definition), waits for
`ui/notifications/initialized` before sending anything, then sends `ui/notifications/tool-input` and
`ui/notifications/tool-result`; it answers the view's `tools/call` and `resources/read` by calling back into Python
(`page.expose_function`), which forwards them to a real MCP client session. Every message both ways is logged
in `window.hostLog` for the tests to assert on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import Browser, FrameLocator, Page

HOST_URL = "http://host.test/"
PROXY_URL = "http://sandbox.test/proxy.html"  # another origin than the host's, as the spec requires

CSP_JS = """
function cspFor(csp) {
  csp = csp || {};
  const res = (csp.resourceDomains || []).join(" ");
  return [
    "default-src 'none'",
    `script-src 'self' 'unsafe-inline' ${res}`, `style-src 'self' 'unsafe-inline' ${res}`,
    `connect-src 'self' ${(csp.connectDomains || []).join(" ")}`, `img-src 'self' data: ${res}`,
    `font-src 'self' ${res}`, `media-src 'self' data: ${res}`,
    `frame-src ${(csp.frameDomains || []).join(" ") || "'none'"}`, "object-src 'none'",
    `base-uri ${(csp.baseUriDomains || []).join(" ") || "'self'"}`,
  ].join("; ");
}
function withCsp(html, csp) {
  return html.replace(/<head>/i, `<head><meta http-equiv="Content-Security-Policy" content="${cspFor(csp)}">`);
}
"""

PROXY_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>sandbox proxy</title>
<style>html, body, iframe { margin: 0; border: 0; width: 100%; height: 100%; }</style></head>
<body>
<script>
"use strict";
""" + CSP_JS + """
const inner = document.createElement("iframe");
const reserved = (msg) => msg && typeof msg.method === "string" && msg.method.startsWith("ui/notifications/sandbox-");
window.addEventListener("message", (event) => {
  const msg = event.data;
  if (event.source === window.parent) {
    if (msg && msg.method === "ui/notifications/sandbox-resource-ready") {
      inner.setAttribute("sandbox", msg.params.sandbox || "allow-scripts allow-same-origin");
      inner.srcdoc = withCsp(msg.params.html, msg.params.csp);
      document.body.appendChild(inner);
    } else if (!reserved(msg) && inner.contentWindow) {
      inner.contentWindow.postMessage(msg, "*");
    }
  } else if (event.source === inner.contentWindow && !reserved(msg)) {
    window.parent.postMessage(msg, "*");
  }
});
window.parent.postMessage({ jsonrpc: "2.0", method: "ui/notifications/sandbox-proxy-ready", params: {} }, "*");
</script>
</body></html>
"""

HOST_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>test MCP Apps host</title></head>
<body>
<div id="chat">tool result goes here</div>
<iframe id="view" title="MCP App" style="width: 640px; height: 480px; border: 1px solid #ccc"></iframe>
<script>
"use strict";
window.hostLog = [];          // every message: {dir: "in"|"out", msg}
window.hostErrors = [];       // protocol violations seen by the host
window.hostSandbox = [];      // the proxy's reserved notifications
let session = null;

""" + CSP_JS + """
function send(msg) {
  msg = { jsonrpc: "2.0", ...msg };
  if (!msg.method || !msg.method.startsWith("ui/notifications/sandbox-")) window.hostLog.push({ dir: "out", msg });
  document.getElementById("view").contentWindow.postMessage(msg, "*");
}

window.addEventListener("message", async (event) => {
  if (!session || event.source !== document.getElementById("view").contentWindow) return;
  const msg = event.data;
  if (msg && msg.method === "ui/notifications/sandbox-proxy-ready") {  // the proxy, not the view
    window.hostSandbox.push(msg.method);
    send({ method: "ui/notifications/sandbox-resource-ready", params: {
      html: session.html, csp: session.resourceMeta && session.resourceMeta.ui && session.resourceMeta.ui.csp } });
    return;
  }
  window.hostLog.push({ dir: "in", msg });
  if (!msg || msg.jsonrpc !== "2.0") { window.hostErrors.push("not JSON-RPC: " + JSON.stringify(msg)); return; }
  if (msg.method === "ui/initialize") {
    if (!msg.params || !msg.params.protocolVersion || !msg.params.appInfo || !msg.params.appCapabilities) {
      window.hostErrors.push("ui/initialize without protocolVersion/appInfo/appCapabilities");
    }
    send({ id: msg.id, result: {
      protocolVersion: "2026-01-26",
      hostInfo: { name: "artifact-mcp-test-host", version: "1" },
      hostCapabilities: { serverTools: {}, serverResources: {}, openLinks: {}, logging: {} },
      hostContext: { toolInfo: { id: 1, tool: session.tool }, theme: "dark", displayMode: "inline",
                     availableDisplayModes: ["inline"], containerDimensions: { width: 640, maxHeight: 2000 },
                     locale: "en-US", platform: "web",
                     styles: { variables: { "--color-text-info": "rgb(1, 2, 3)" } } },
    } });
  } else if (msg.method === "ui/notifications/initialized") {
    session.initialized = true;
    send({ method: "ui/notifications/tool-input", params: { arguments: session.toolInput } });
    send({ method: "ui/notifications/tool-result", params: session.toolResult });
  } else if (msg.method === "tools/call" || msg.method === "resources/read") {
    if (!session.initialized) window.hostErrors.push(msg.method + " before ui/notifications/initialized");
    try {
      const result = msg.method === "tools/call"
        ? await window.hostCallTool(msg.params.name, msg.params.arguments || {})
        : await window.hostReadResource(msg.params.uri);
      send({ id: msg.id, result });
    } catch (err) {
      send({ id: msg.id, error: { code: -32603, message: String(err && err.message || err) } });
    }
  } else if (msg.method === "ui/open-link") {
    send({ id: msg.id, result: {} });
  } else if (msg.id !== undefined && msg.method !== undefined) {
    send({ id: msg.id, error: { code: -32601, message: "Method not found: " + msg.method } });
  }
});

window.hostStart = (s) => {
  session = { ...s, initialized: false };
  const iframe = document.getElementById("view");
  if (s.mode === "proxy") {
    iframe.setAttribute("sandbox", "allow-scripts allow-same-origin");
    iframe.src = s.proxyUrl;
  } else {
    iframe.setAttribute("sandbox", "allow-scripts");
    iframe.srcdoc = withCsp(s.html, s.resourceMeta && s.resourceMeta.ui && s.resourceMeta.ui.csp);
  }
};
</script>
</body></html>
"""


class AppHost:
    """One host page in a fresh browser context; `show` hands the view one tool call's input and result."""

    def __init__(self, page: Page, call_tool: Callable[[str, dict[str, Any]], dict[str, Any]],
                 read_resource: Callable[[str], dict[str, Any]], mode: str) -> None:
        assert mode in ("iframe", "proxy")
        self.page, self.mode = page, mode
        self.calls: list[tuple[str, dict[str, Any]]] = []

        def forward_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
            self.calls.append((name, arguments))
            return call_tool(name, arguments)

        page.expose_function("hostCallTool", forward_call)
        page.expose_function("hostReadResource", read_resource)
        page.route(HOST_URL, lambda route: route.fulfill(status=200, content_type="text/html", body=HOST_HTML))
        page.route(PROXY_URL, lambda route: route.fulfill(status=200, content_type="text/html", body=PROXY_HTML))
        page.goto(HOST_URL)

    def show(self, *, html: str, resource_meta: dict[str, Any] | None, tool: dict[str, Any],
             tool_input: dict[str, Any], tool_result: dict[str, Any]) -> FrameLocator:
        self.page.evaluate("s => window.hostStart(s)", {
            "html": html, "resourceMeta": resource_meta, "tool": tool, "toolInput": tool_input,
            "toolResult": tool_result, "mode": self.mode, "proxyUrl": PROXY_URL})
        outer = self.page.frame_locator("#view")
        return outer.frame_locator("iframe") if self.mode == "proxy" else outer

    def send(self, message: dict[str, Any]) -> None:
        """A host-initiated message to the view (a notification, or a request whose answer lands in the log)."""
        self.page.evaluate("m => send(m)", message)

    def log(self) -> list[dict[str, Any]]:
        return self.page.evaluate("window.hostLog")

    def errors(self) -> list[str]:
        return self.page.evaluate("window.hostErrors")

    def sandbox_messages(self) -> list[str]:
        return self.page.evaluate("window.hostSandbox")

    def methods(self, direction: str) -> list[str]:
        return [entry["msg"].get("method") for entry in self.log() if entry["dir"] == direction]


@contextmanager
def app_host(browser: Browser, call_tool: Callable[[str, dict[str, Any]], dict[str, Any]],
             read_resource: Callable[[str], dict[str, Any]], mode: str = "iframe") -> Iterator[AppHost]:
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        host = AppHost(page, call_tool, read_resource, mode)
        yield host
        assert not errors, f"script errors in the host or view: {errors}"
        assert not host.errors(), host.errors()
        if mode == "proxy":
            assert host.sandbox_messages() == ["ui/notifications/sandbox-proxy-ready"]
    finally:
        context.close()


def wire(result: Any) -> dict[str, Any]:
    """A result model as it travels on the wire (camelCase, no nulls): what a host passes on to the view."""
    return json.loads(result.model_dump_json(by_alias=True, exclude_none=True))
