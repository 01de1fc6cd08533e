"""Building the MCP application: server object, tools, resources, notifications, HTTP apps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mcp.server import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.types import ASGIApp

from server.resources import install_resources
from server.runtime import Runtime
from server.settings import Settings
from server.timings import Timings
from tools.artifacts import build_artifact_tools
from tools.query import build_query_tools

INSTRUCTIONS = """\
Durable memory for artifacts: reports, summaries, transcripts, JSON results, code and files.
Store with create_artifact (text/JSON) or upload_artifact (files); find with list_artifacts
(filters: thread_id, artifact_types, tags, status; cursor pages); read with get_artifact or the
resource artifact://{artifact_id}/content. update_artifact with new content makes a new version;
list_artifact_versions shows them. Recall by meaning with query_artifacts (hybrid search; its
combined_context is ready to cite); promote_artifact makes one a workspace-wide knowledge source;
list_artifact_jobs shows background indexing. Scope (org_id/workspace_id/namespace_id) defaults
from settings."""


def _version() -> str:
    try:
        return version("artifact-mcp")
    except PackageNotFoundError:
        return "0.0.0"


def build_app(settings: Settings | None = None) -> tuple[MCPServer, Runtime]:
    settings = settings or Settings()
    runtime = Runtime(settings)
    middleware: list[Any] = [runtime.notifier.middleware]
    lifespan: Any = runtime.lifespan
    if settings.timings_file is not None:  # opt-in benchmark timings
        timings = Timings(settings.timings_file)
        middleware.insert(0, timings.middleware)
        lifespan = timings.wrap_lifespan(lifespan)
    app = MCPServer(
        "artifact-mcp",
        title="Artifact memory",
        instructions=INSTRUCTIONS,
        version=_version(),
        tools=[*build_artifact_tools(runtime), *build_query_tools(runtime)],
        lifespan=lifespan,
        subscriptions=runtime.bus,
        middleware=middleware,
        log_level=settings.log_level,
    )
    install_resources(app, runtime)
    return app, runtime


def transport_security(settings: Settings) -> TransportSecuritySettings | None:
    """DNS-rebinding protection: the SDK's localhost defaults unless hosts/origins are configured."""
    if not settings.allowed_hosts and not settings.allowed_origins:
        return None
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=settings.allowed_hosts,
        allowed_origins=settings.allowed_origins,
    )


def http_app(app: MCPServer, runtime: Runtime, transport: str) -> ASGIApp:
    """Starlette app for streamable HTTP (`/mcp`) or SSE (`/sse`), with the store opened once."""
    settings = runtime.settings
    body_limit = settings.max_upload_bytes * 4 // 3 + 1024 * 1024
    if transport == "http":
        inner: Starlette = app.streamable_http_app(
            max_request_body_size=body_limit, transport_security=transport_security(settings), host=settings.host
        )
    else:
        inner = app.sse_app(
            max_request_body_size=body_limit, transport_security=transport_security(settings), host=settings.host
        )
    inner_lifespan = inner.router.lifespan_context

    @asynccontextmanager
    async def lifespan(starlette_app: Starlette) -> AsyncIterator[None]:
        async with runtime.open(), inner_lifespan(starlette_app):
            yield

    inner.router.lifespan_context = lifespan
    return inner
