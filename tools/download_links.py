"""get_artifact_download_url: a link to an artifact version's bytes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field

from artifact_mcp.server.settings import Settings
from artifact_mcp.storage.errors import InvalidInput
from artifact_mcp.storage.links import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN, MIN_EXPIRES_IN, DownloadLink
from artifact_mcp.storage.models import ArtifactId
from artifact_mcp.tools.artifacts import Backend
from artifact_mcp.tools.base import ScopeParams, ToolInput, make_tool, tool_result


class DownloadBackend(Backend, Protocol):
    @property
    def settings(self) -> Settings: ...
    @property
    def public_url(self) -> str: ...


class GetDownloadUrlInput(ToolInput, ScopeParams):
    artifact_id: ArtifactId = Field(description="The artifact version to download (each version has its own id).")
    expires_in: int = Field(DEFAULT_EXPIRES_IN, ge=MIN_EXPIRES_IN, le=MAX_EXPIRES_IN,
                            description=f"Seconds the link stays valid, {MIN_EXPIRES_IN}-{MAX_EXPIRES_IN} "
                                        f"(default {DEFAULT_EXPIRES_IN}).")


class DownloadUrl(BaseModel):
    artifact_id: str
    download_url: str = Field(description="GET it (no token needed: the link is the credential); honours Range.")
    expires_in: int = Field(description="Seconds the link stays valid from now.")
    expires_at: datetime | None = Field(None, description="When it stops working (None: a local file path).")
    file_name: str
    content_type: str
    file_size_bytes: int
    note: str | None = None


async def _native_url(backend: DownloadBackend, link: DownloadLink) -> str | None:
    """The blob store's own presigned URL (s3fs, gcsfs…), when enabled and supported."""
    if not backend.settings.native_download_links or link.blob_key is None:
        return None
    blobs = backend.store.blobs
    try:
        return await anyio.to_thread.run_sync(
            lambda: blobs.fs.sign(blobs.path(link.blob_key), expiration=link.expires_in)
        )
    except NotImplementedError:
        return None


def _stdio_url(backend: DownloadBackend, link: DownloadLink) -> str:
    if link.blob_key is None:
        raise InvalidInput(
            f"no download link in stdio mode for {link.artifact_id}: it is text/JSON content kept in the catalog, "
            f"not a file. Read it with get_artifact (or the resource artifact://{link.artifact_id}/content)"
        )
    path = backend.store.blobs.local_path(link.blob_key)
    if path is None:
        protocol = backend.store.blobs.url.split("://", 1)[0]
        raise InvalidInput(
            f"no download link can be made in stdio mode: this server's files are in a '{protocol}://' blob store, "
            "which has no local path and cannot sign URLs. Read the bytes with the resource "
            f"artifact://{link.artifact_id}/content, or run the server over HTTP (--transport http) for links"
        )
    return Path(path).as_uri()


def build_download_tools(backend: DownloadBackend) -> list[Tool]:
    async def get_artifact_download_url(p: GetDownloadUrlInput, ctx: Context) -> CallToolResult:
        """Get a URL to download an artifact version's bytes (files and text/JSON content alike), valid for
        expires_in seconds (60-86400, default 3600). Over HTTP it is a signed link to this server (no token
        needed; supports Range requests; it stops working when it expires, the version is deleted or the token
        that asked for it is revoked). On stdio it is a file:// path on this machine when files are stored
        locally; otherwise the tool says so and get_artifact / artifact://{id}/content read the content."""
        scope = backend.authorize(ctx, p, "read")
        principal = backend.principal(ctx)
        link = await backend.store.download_link(scope, p.artifact_id, p.expires_in, principal.token_id)
        expires_at: datetime | None = link.expires_at
        note = None
        url = await _native_url(backend, link)
        if url is not None:
            note = "presigned by the blob store: it cannot be revoked before it expires"
        elif backend.settings.transport != "stdio":
            url = f"{backend.public_url}/download/{link.token}"
        else:
            url = _stdio_url(backend, link)
            expires_at, note = None, "a file on this machine (stdio mode): open it directly; it does not expire"
        out = DownloadUrl(artifact_id=link.artifact_id, download_url=url, expires_in=link.expires_in,
                          expires_at=expires_at, file_name=link.file_name, content_type=link.content_type,
                          file_size_bytes=link.size_bytes, note=note)
        text = f"Download {link.file_name} ({link.content_type}, {link.size_bytes} B): {url}"
        if note:
            text += f"\n({note})"
        return tool_result(out, text)

    return [
        make_tool(get_artifact_download_url, name="get_artifact_download_url", title="Get a download link",
                  input_model=GetDownloadUrlInput, output_model=DownloadUrl,
                  annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=False,
                                              open_world_hint=False)),
    ]
