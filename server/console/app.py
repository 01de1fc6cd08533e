"""The console as one ASGI app, mounted at /ui by the HTTP server (server/http.py) and by `artifact-mcp console`.

A FastAPI app of its own: its HTML routes stay out of the REST API's OpenAPI document, and its errors are pages,
not JSON. Static files (htmx, CSS) come from the package: no build step at install time.
"""

import hashlib

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp

from artifact_mcp.server.console import render
from artifact_mcp.server.console.actions import actions_router
from artifact_mcp.server.console.pages import pages_router
from artifact_mcp.server.console.web import (
    STATIC,
    Console,
    CsrfFailed,
    ScopeRequired,
    SecurityHeaders,
    SignInRequired,
)
from artifact_mcp.server.routes.errors import STATUS_FOR
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.storage.errors import StoreError
from artifact_mcp.storage.text import printable

TITLES = {400: "Bad request", 401: "Sign in again", 403: "Forbidden", 404: "Not found", 405: "Not allowed",
          409: "Conflict", 413: "Too large", 422: "Invalid input", 503: "Unavailable"}


def console_app(runtime: Runtime) -> ASGIApp:
    console = Console(runtime)
    app = FastAPI(title="artifact-mcp console", openapi_url=None, docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    css = render.pygments_css()
    console.versions["pygments.css"] = hashlib.sha256(css.encode()).hexdigest()[:12]

    @app.get("/static-gen/pygments.css", include_in_schema=False)
    async def pygments_css() -> Response:
        return Response(css, media_type="text/css")

    app.include_router(actions_router(console))
    app.include_router(pages_router(console))

    def page(request: Request, status: int, message: str) -> HTMLResponse:
        return console.render(request, "error.html", status=status, title=TITLES.get(status, "Error"),
                              message=printable(message))

    @app.exception_handler(SignInRequired)
    async def sign_in(request: Request, _exc: SignInRequired) -> Response:
        if request.method in ("GET", "HEAD"):
            base = request.scope.get("root_path", "")
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{base}/login?next={_quote(target)}", status_code=303)
        return page(request, 401, "your session has ended (or you never signed in): sign in and try again")

    @app.exception_handler(ScopeRequired)
    async def scope_required(request: Request, exc: ScopeRequired) -> Response:
        return console.render(request, "scope.html", grants=[g.label() for g in exc.principal.scopes])

    @app.exception_handler(CsrfFailed)
    async def csrf(request: Request, exc: CsrfFailed) -> Response:
        return page(request, 403, f"forbidden: {exc}; nothing was changed")

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> Response:
        status = STATUS_FOR.get(exc.kind, 422)
        suffix = "; nothing was changed" if request.method == "POST" and status != 503 else ""
        return page(request, status, exc.message + suffix)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'input'}: {e.get('msg')}" for e in exc.errors()]
        return page(request, 422, "; ".join(parts) or "invalid input")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = "no such page in the console" if exc.status_code == 404 else str(exc.detail)
        return page(request, exc.status_code, message)

    return SecurityHeaders(app, runtime)


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="/")
