"""What the tools need from the running server (the server's Runtime implements it; tools never import server)."""

from __future__ import annotations

from typing import Protocol

from mcp.server.mcpserver import Context

from artifact_mcp.storage.access import Access, Permission, Principal, ScopeParams
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.usecases.links import LinkPolicy
from artifact_mcp.storage.usecases.progress import Progress


class Backend(Protocol):
    @property
    def store(self) -> StoreClient: ...
    @property
    def allowed_roots(self) -> list[str]: ...
    @property
    def max_upload_bytes(self) -> int: ...
    @property
    def link_policy(self) -> LinkPolicy: ...
    def principal(self, ctx: Context) -> Principal: ...


def access(backend: Backend, ctx: Context, params: ScopeParams, need: Permission) -> Access:
    """The scope a tool call acts on (omitted parts from the caller's default), checked against its grants."""
    return Access.resolve(backend.principal(ctx), params, need)


def progress_of(ctx: Context) -> Progress:
    """Use-case progress as MCP progress notifications (sent only when the client asked, with a token)."""

    async def progress(fraction: float, message: str) -> None:
        await ctx.report_progress(fraction, 1.0, message)

    return progress
