"""The HTTP application: MCP (streamable HTTP at /mcp, or SSE), REST mirror, download links, health.

One FastAPI app holds the non-MCP routes (so `/openapi.json` documents exactly them) and mounts the
SDK's MCP Starlette app at `/` as the fallback. ASGI middleware around everything: access log,
`X-API-Key` → bearer, authentication (the same verifier the SDK's MCP transport uses).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from mcp.server import MCPServer
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
from starlette.applications import Starlette
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from artifact_mcp.server.auth.http import ApiKeyHeader, FileTokenVerifier, Unauthenticated, www_authenticate
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.server.transport import transport_security
from artifact_mcp.storage.errors import StoreError

access_log = logging.getLogger("artifact_mcp.access")

STATUS_FOR: dict[str, int] = {
    "invalid": 422, "not_found": 404, "conflict": 409, "too_large": 413, "forbidden": 403, "unavailable": 503,
}


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
    from artifact_mcp.server.routes.health import health_router

    inner = _mcp_app(app, runtime, transport)
    inner_lifespan = inner.router.lifespan_context

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        async with runtime.open(), inner_lifespan(inner):
            yield

    api = FastAPI(title="artifact-mcp", version=app._lowlevel_server.version or "0.0.0",
                  description="REST mirror of the artifact-mcp tools (MechaMental routes), download links, health.",
                  lifespan=lifespan, openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    api.state.runtime = runtime
    api.include_router(health_router(runtime))
    for router in _optional_routers(runtime):
        api.include_router(router)

    @api.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        status = STATUS_FOR.get(exc.kind, 400)
        if status == 422:  # the same `detail` list as FastAPI's request validation errors
            detail = [{"type": "value_error", "loc": ["body"], "msg": exc.message, "input": None, "ctx": {}}]
            return JSONResponse({"detail": detail, "error": exc.kind}, status_code=422)
        return JSONResponse({"detail": exc.message, "error": exc.kind}, status_code=status)

    @api.exception_handler(Unauthenticated)
    async def unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "error": "unauthenticated"}, status_code=401,
                            headers={"WWW-Authenticate": www_authenticate(description=exc.message)})

    api.mount("/", inner)
    outer: ASGIApp = api
    if runtime.auth_enabled:
        outer = AuthenticationMiddleware(outer, backend=BearerAuthBackend(FileTokenVerifier(runtime.tokens)))
    return AccessLog(ApiKeyHeader(outer))


def _optional_routers(runtime: Runtime) -> list[Any]:
    """Routers of the other HTTP features (download links, REST mirror), each in its own module."""
    routers: list[Any] = []
    try:
        from artifact_mcp.server.routes.link_downloads import downloads_router
    except ImportError:
        pass
    else:
        routers.append(downloads_router(runtime))
    try:
        from artifact_mcp.server.routes.rest import rest_router
    except ImportError:
        pass
    else:
        routers.append(rest_router(runtime))
    return routers
