"""The console's request plumbing: who is signed in, the Access a page acts with, CSRF checks, security headers,
and rendering a template with what every page shows (the principal, what it may do, the CSRF token)."""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from artifact_mcp.server.auth.http import CLAIM, principal_of
from artifact_mcp.server.console.session import (
    CSRF_COOKIE,
    SCOPE_COOKIE,
    SESSION_COOKIE,
    Sessions,
    load_key,
    new_anchor,
)
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.storage.access import Access, Permission, Principal, ScopeGrant, ScopeParams
from artifact_mcp.storage.errors import StoreError
from artifact_mcp.storage.models import Scope

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# No inline script or style anywhere in the templates: htmx is configured by a <meta> tag. Images and frames only
# from this origin (the raw route, itself sandboxed).
PAGE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'self'; "
            "frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY", "Cache-Control": "private, no-store",
}


class SignInRequired(Exception):
    """No session (or it ended): pages redirect to the sign-in form."""


class ScopeRequired(Exception):
    """A principal with no home scope (wildcard grants, no default) has not chosen one yet: the chooser page."""

    def __init__(self, principal: Principal) -> None:
        super().__init__("choose a scope")
        self.principal = principal


def chosen_scope(text: str | None) -> Scope | None:
    """`org/workspace/namespace` (all three concrete), or None."""
    if not text:
        return None
    try:
        return ScopeGrant.parse(text).concrete()
    except StoreError:
        return None


class CsrfFailed(Exception):
    """A POST without the form's CSRF token, with a wrong one, or from another origin: 403, nothing done."""


class Console:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.templates = Jinja2Templates(directory=str(TEMPLATES))
        self.templates.env.globals["scope_label"] = lambda s: s.label()
        # Static URLs carry their content's hash, so browsers keep them (immutable) until the package changes.
        self.versions = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:12] for p in STATIC.iterdir()
                         if p.is_file()}
        self._sessions: Sessions | None = None

    @property
    def sessions(self) -> Sessions:
        if self._sessions is None:  # the data directory may not exist until the store opens it
            # Replicas of a shared catalog sign sessions with the catalog's key, so a cookie works on any of them.
            key = self.runtime.tokens.shared_secret("console_session_key")
            self._sessions = Sessions(self.runtime.tokens, key or load_key(self.runtime.settings.data_dir))
        return self._sessions

    # --- who is asking ---------------------------------------------------------------------------

    def principal(self, request: Request) -> Principal | None:
        if not self.runtime.auth_enabled:
            return self.runtime.local
        # A bearer token (scripts, curl) works too; browsers use the session cookie.
        direct = principal_of(request)
        if direct is not None:
            return direct
        session = self.sessions.resolve(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        # As if the token had come as a bearer header: the access log names the principal of console requests too
        # (the session stands in for the token, which the console never holds).
        principal = session.principal
        request.scope["user"] = AuthenticatedUser(AccessToken(
            token="console-session", client_id=principal.principal_id, scopes=sorted(principal.permissions),
            subject=principal.principal_id, claims={CLAIM: principal.model_dump(mode="json")}))
        return principal

    def access(self, request: Request, need: Permission = "read") -> Access:
        """The signed-in principal in the scope this browser chose (the `amcp_scope` cookie, while the principal
        still sees it), else in its home scope (default scope, or its one concrete grant)."""
        principal = self.principal(request)
        if principal is None:
            raise SignInRequired
        chosen = chosen_scope(request.cookies.get(SCOPE_COOKIE))
        if chosen is not None and principal.sees(chosen):
            return Access.check(principal, chosen, need)
        if principal.home() is None:
            raise ScopeRequired(principal)
        return Access.resolve(principal, ScopeParams(), need)

    def switchable(self, principal: Principal | None) -> bool:
        """Whether this principal can act in more than one scope (the header then offers to switch)."""
        if principal is None:
            return False
        return principal.trusted or len(principal.scopes) > 1 or any(g.concrete() is None for g in principal.scopes)

    def may(self, access: Access, need: Permission) -> bool:
        return access.principal.sees(access.scope) and access.principal.can(need)

    # --- CSRF ------------------------------------------------------------------------------------

    def anchor(self, request: Request) -> str:
        """This browser's CSRF anchor (made on its first page; `render` sets the cookie)."""
        anchor = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_anchor", None)
        if anchor is None:
            anchor = request.state.new_anchor = new_anchor()
        return anchor

    def csrf_token(self, request: Request) -> str:
        return self.sessions.csrf_token(self.anchor(request), request.cookies.get(SESSION_COOKIE))

    async def check_post(self, request: Request) -> None:
        """Before any mutation (and the sign-in): same origin, and the form's CSRF token matches this browser's."""
        # Browsers send Origin on every POST ("null" from sandboxed or no-referrer contexts: refused too; the
        # console's own pages are same-origin under their Referrer-Policy).
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            raise CsrfFailed("this form was sent from another site")
        form = await request.form()
        sent = request.headers.get("x-csrf-token") or form.get("csrf_token")
        if not self.sessions.csrf_ok(request.cookies.get(CSRF_COOKIE), request.cookies.get(SESSION_COOKIE),
                                     sent if isinstance(sent, str) else None):
            raise CsrfFailed("the form's CSRF token is missing or wrong: reload the page and try again")

    # --- pages -----------------------------------------------------------------------------------

    def render(self, request: Request, template: str, status: int = 200, access: Access | None = None,
               **context: Any) -> HTMLResponse:
        principal = access.principal if access else self.principal(request)
        base = request.scope.get("root_path", "")
        context.update(
            base=base, principal=principal, access=access, auth=self.runtime.auth_enabled,
            can_write=access is not None and self.may(access, "write"),
            can_admin=access is not None and self.may(access, "admin"),
            csrf=self.csrf_token(request), path=request.url.path, switchable=self.switchable(principal),
            v=self.versions,
        )
        response = self.templates.TemplateResponse(request, template, context, status_code=status)
        self.set_anchor(request, response)
        return response

    def set_anchor(self, request: Request, response: Response) -> None:
        new = getattr(request.state, "new_anchor", None)
        if new is not None and CSRF_COOKIE not in request.cookies:
            response.set_cookie(CSRF_COOKIE, new, httponly=True, samesite="strict", secure=self.secure(request),
                                path=request.scope.get("root_path", "") or "/")

    def secure(self, request: Request) -> bool:
        return request.url.scheme == "https" or self.runtime.public_url.startswith("https://")


def _loopback(host: str) -> bool:
    if host.startswith("["):
        name = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        name = host.split(":", 1)[0]
    else:
        name = host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class SecurityHeaders:
    """Every console answer gets the strict CSP (unless a route set its own, stricter one: the raw bytes), and, on a
    server bound to loopback without auth, a Host check: a DNS-rebinding page cannot read the local console."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.runtime.settings
        host = Headers(scope=scope).get("host", "")
        if (not self.runtime.auth_enabled and _loopback(settings.host) and not _loopback(host)
                and host not in settings.allowed_hosts):
            response = Response(f"host {host!r} is not this local console's; open it as http://127.0.0.1:…/ui",
                                status_code=421, media_type="text/plain")
            await response(scope, receive, send)
            return

        # Static files: kept for good under a versioned URL (`?v=<hash>`, what the pages link), else revalidated.
        extra = PAGE_HEADERS
        if scope["path"].startswith((f"{scope.get('root_path', '')}/static", "/static")):
            versioned = b"v=" in scope.get("query_string", b"")
            extra = {**PAGE_HEADERS,
                     "Cache-Control": "public, max-age=31536000, immutable" if versioned else "no-cache"}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()
                            if k.lower().encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
