"""get_artifact_download_url: a link to an artifact version's bytes."""

from __future__ import annotations

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from mcp.types import CallToolResult, ToolAnnotations

from artifact_mcp.storage.access import ScopeParams
from artifact_mcp.storage.usecases.bodies import ArtifactRef, DownloadUrl, DownloadUrlOptions
from artifact_mcp.storage.usecases.links import download_url
from artifact_mcp.tools.backend import Backend, access
from artifact_mcp.tools.base import ToolInput, make_tool, tool_result


class GetDownloadUrlInput(ToolInput, ScopeParams, ArtifactRef, DownloadUrlOptions):
    pass


def build_download_tools(backend: Backend) -> list[Tool]:
    async def get_artifact_download_url(p: GetDownloadUrlInput, ctx: Context) -> CallToolResult:
        """Get a URL to download an artifact version's bytes (files and text/JSON content alike), valid for
        expires_in seconds (60-86400, default 3600). Over HTTP it is a signed link to this server (no token
        needed; supports Range requests; it stops working when it expires, the version is deleted or the token
        that asked for it is revoked). On stdio it is a file:// path on this machine when files are stored
        locally; otherwise the tool says so and get_artifact / artifact://{id}/content read the content."""
        out = await download_url(backend.store, access(backend, ctx, p, "read"), p.artifact_id, p.expires_in,
                                 backend.link_policy)
        text = f"Download {out.file_name} ({out.content_type}, {out.file_size_bytes} B): {out.download_url}"
        if out.note:
            text += f"\n({out.note})"
        return tool_result(out, text)

    return [
        make_tool(get_artifact_download_url, name="get_artifact_download_url", title="Get a download link",
                  input_model=GetDownloadUrlInput, output_model=DownloadUrl,
                  annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=False,
                                              open_world_hint=False)),
    ]
