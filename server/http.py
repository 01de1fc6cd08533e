"""The HTTP application: MCP (streamable HTTP at /mcp, or SSE), REST mirror, download links, health, the console (/ui).

One FastAPI app holds the non-MCP routes (so `/openapi.json` documents exactly them) and mounts the
SDK's MCP Starlette app at `/` as the fallback. ASGI middleware around everything: access log,
`X-API-Key` → bearer, authentication (the same verifier the SDK's MCP transport uses).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from mcp.server import MCPServer
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
from starlette.applications import Starlette
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from artifact_mcp.server.auth.http import ApiKeyHeader, FileTokenVerifier, TokenStoreUnavailable
from artifact_mcp.server.console.app import console_app
from artifact_mcp.server.routes.aimable import aimable_router
from artifact_mcp.server.routes.errors import install_error_handlers
from artifact_mcp.server.routes.health import health_router
from artifact_mcp.server.routes.link_downloads import downloads_router
from artifact_mcp.server.routes.mechamental import mechamental_router
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.server.transport import transport_security

access_log = logging.getLogger("artifact_mcp.access")


class AccessLog:
    """One structured line per request: method, path, status, duration, principal (never the token)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            user = scope.get("user")
            # A download link's token is a credential: it stays out of the logs.
            path = "/download/<link>" if scope["path"].startswith("/download/") else scope["path"]
            access_log.info(
                "%s %s %d", scope["method"], path, status,
                extra={"http_method": scope["method"], "path": path, "status": status,
                       "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                       "principal": user.username if isinstance(user, AuthenticatedUser) else None,
                       "client": (scope.get("client") or ("", 0))[0]},
            )


def _mcp_app(app: MCPServer, runtime: Runtime, transport: str) -> Starlette:
    settings = runtime.settings
    body_limit = settings.max_upload_bytes * 4 // 3 + 1024 * 1024
    security = transport_security(settings)
    if transport == "http":
        return app.streamable_http_app(max_request_body_size=body_limit, transport_security=security,
                                       host=settings.host)
    return app.sse_app(max_request_body_size=body_limit, transport_security=security, host=settings.host)


def http_app(app: MCPServer, runtime: Runtime, transport: str) -> ASGIApp:
    """The whole HTTP server; the store is opened once, in this app's lifespan."""
    inner = _mcp_app(app, runtime, transport)
    inner_lifespan = inner.router.lifespan_context

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        async with runtime.open(), inner_lifespan(inner):
            yield

    api = FastAPI(title="artifact-mcp", version=app._lowlevel_server.version or "0.0.0",
                  description="The artifact store over REST: the MechaMental and Aimable Artifacts APIs (the same "
                              "use cases as the MCP tools), download links, health.",
                  lifespan=lifespan, openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    api.state.runtime = runtime
    api.include_router(health_router(runtime))
    api.include_router(downloads_router(runtime))
    api.include_router(mechamental_router(runtime))
    api.include_router(aimable_router(runtime))
    api.mount("/ui", console_app(runtime))
    install_error_handlers(api)
    outer: ASGIApp = Doors(api, inner)
    if runtime.auth_enabled:
        outer = TokenStoreUnavailable(
            AuthenticationMiddleware(outer, backend=BearerAuthBackend(FileTokenVerifier(runtime.tokens))))
    return AccessLog(ApiKeyHeader(outer))


class Doors:
    """MCP's own paths (`/mcp`, `/sse`, `/messages/`, its OAuth metadata) go to the SDK's app, everything else to
    FastAPI. (Mounting the SDK's app at `/` would send every unmatched path and method there, so a wrong method on
    a REST route answered a plain-text 404 instead of a JSON 405.)"""

    def __init__(self, api: ASGIApp, mcp: Starlette) -> None:
        self.api = api
        self.mcp = mcp
        self.prefixes = tuple(sorted({route.path.rstrip("/") for route in mcp.routes if hasattr(route, "path")}))

    def _is_mcp(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self._is_mcp(scope["path"]):
            await self.mcp(scope, receive, send)
        else:
            await self.api(scope, receive, send)
