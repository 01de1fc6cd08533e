"""`artifact-mcp console`: the web console on 127.0.0.1 for a local user whose agents run stdio servers.

It joins the data directory like any other process (forwarding to the process that owns the store, or owning it
if none does) and serves only the console (at /ui; / redirects there): no MCP, no REST.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from artifact_mcp.server.settings import Settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from artifact_mcp.server.runtime import Runtime

log = logging.getLogger("artifact_mcp")


def console_asgi(settings: Settings) -> tuple[ASGIApp, Runtime]:
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse

    from artifact_mcp.server.console.app import console_app
    from artifact_mcp.server.http import AccessLog
    from artifact_mcp.server.runtime import Runtime

    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async with runtime.open():
            yield

    api = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, lifespan=lifespan)

    @api.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    api.mount("/ui", console_app(runtime))
    outer: ASGIApp = api
    if runtime.auth_enabled:
        from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
        from starlette.middleware.authentication import AuthenticationMiddleware

        from artifact_mcp.server.auth.http import FileTokenVerifier

        outer = AuthenticationMiddleware(api, backend=BearerAuthBackend(FileTokenVerifier(runtime.tokens)))
    return AccessLog(outer), runtime


def run_console(settings: Settings) -> None:
    import uvicorn

    app, runtime = console_asgi(settings)
    if runtime.auth_enabled and not runtime.tokens.has_tokens():
        log.warning("the console needs a token to sign in and %s holds none: create one with `artifact-mcp token "
                    "create --principal NAME --scope ORG/WS/NS --permission admin`, or pass --auth none (trusts "
                    "everyone who can reach 127.0.0.1)", settings.tokens_path)
    log.info("console on http://%s:%d/ui (store: %s)", settings.host, settings.port, settings.data_dir)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                            log_level=settings.log_level.lower(), lifespan="on",
                            timeout_graceful_shutdown=settings.shutdown_grace_seconds)
    uvicorn.Server(config).run()
