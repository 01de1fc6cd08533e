"""The MCP App viewer (MCP Apps extension `io.modelcontextprotocol/ui`, spec revision 2026-01-26).

One `ui://` HTML resource, served as `text/html;profile=mcp-app`, renders what get_artifact,
query_artifacts and list_artifact_versions return: hosts that implement the extension read it with
`resources/read`, show it in a sandboxed iframe beside the tool result and hand it that result over
postMessage. The tools point at it through `_meta.ui.resourceUri` on their definitions; their results
are unchanged, so hosts without the extension see exactly what they saw before.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID, Apps, ResourceCsp

VIEWER_URI = "ui://artifact-mcp/viewer"
__all__ = ["APP_MIME_TYPE", "EXTENSION_ID", "VIEWER_URI", "build_viewer_extension", "viewer_html", "viewer_meta"]


@cache
def viewer_html() -> str:
    # Package data (pyproject [tool.setuptools.package-data]): the installed wheel carries the file.
    return files("artifact_mcp.tools").joinpath("viewer.html").read_text(encoding="utf-8")


def viewer_meta() -> dict[str, Any]:
    """The tool `_meta` linking a tool to the viewer. The flat `ui/resourceUri` key is the spec's deprecated
    spelling, still read by hosts built before it settled on `ui.resourceUri`."""
    return {"ui": {"resourceUri": VIEWER_URI}, "ui/resourceUri": VIEWER_URI}


def build_viewer_extension() -> Apps:
    """The SDK's Apps extension holding the viewer: `MCPServer(extensions=[...])` advertises
    `io.modelcontextprotocol/ui` in the server's capabilities and registers the resource."""
    apps = Apps()
    apps.add_html_resource(
        VIEWER_URI, viewer_html(), name="artifact-viewer", title="Artifact viewer",
        description="MCP App view for get_artifact (the artifact rendered), query_artifacts (results as cards) "
                    "and list_artifact_versions (a diff of two versions).",
        # Everything is inline and it fetches through the host's tools/call: no external origin at all.
        csp=ResourceCsp(connect_domains=[], resource_domains=[]),
        prefers_border=True,
    )
    return apps
