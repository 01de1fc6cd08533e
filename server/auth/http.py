"""Authenticating HTTP requests: the SDK's token-verification hook, and `X-API-Key` for service accounts."""

from __future__ import annotations

import hashlib
import json

import anyio
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken, TokenVerifier
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from artifact_mcp.server.auth.tokens import TokenFile, TokenRecord
from artifact_mcp.storage.access import Principal
from artifact_mcp.storage.errors import Unavailable

CLAIM = "artifact_mcp_principal"


class FileTokenVerifier(TokenVerifier):
    """Maps a bearer token to its principal, carried in the AccessToken's claims.

    Every request is verified again (a revoke takes effect at once), but where the records are a file the check is
    a stat and a dict lookup, made on the event loop: the hop to a worker thread cost more than the check (9% of
    the server's GIL time under bench/load.py's 50 clients went to verify_token, most of it the hop and building
    the AccessToken). The AccessToken is built once per token and record, and reused while the record is
    unchanged. A PostgreSQL record store is a database round trip: that one runs on a worker thread."""

    _CACHED = 1024  # tokens whose AccessToken is kept; past it the cache starts over

    def __init__(self, tokens: TokenFile) -> None:
        self.tokens = tokens
        self._issued: dict[bytes, tuple[TokenRecord, AccessToken]] = {}

    async def verify_token(self, token: str) -> AccessToken | None:
        if self.tokens.reads_block:
            record = await anyio.to_thread.run_sync(self.tokens.verify, token)
        else:
            record = self.tokens.verify(token)
        key = hashlib.sha256(token.encode()).digest()  # the cache keeps no token in the clear
        if record is None:
            self._issued.pop(key, None)
            return None
        issued = self._issued.get(key)
        if issued is not None and issued[0] == record:
            return issued[1]
        principal = record.principal()
        access = AccessToken(
            token=token, client_id=principal.principal_id, scopes=sorted(principal.permissions),
            expires_at=int(record.expires_at.timestamp()) if record.expires_at else None,
            subject=principal.principal_id, claims={CLAIM: principal.model_dump(mode="json")},
        )
        if len(self._issued) >= self._CACHED:
            self._issued.clear()
        self._issued[key] = (record, access)
        return access


def principal_of(conn: HTTPConnection | None) -> Principal | None:
    """The principal the auth middleware attached to this request, if any."""
    if conn is None:
        return None
    user = conn.scope.get("user")
    if not isinstance(user, AuthenticatedUser):
        return None
    claims = user.access_token.claims or {}
    data = claims.get(CLAIM)
    return Principal.model_validate(data) if data is not None else None


class ApiKeyHeader:
    """`X-API-Key: <token>` is accepted as `Authorization: Bearer <token>` (when no Authorization is sent)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = Headers(scope=scope)
            key = headers.get("x-api-key")
            if key and "authorization" not in headers:
                scope = dict(scope)
                scope["headers"] = [*scope["headers"], (b"authorization", f"Bearer {key.strip()}".encode())]
        await self.app(scope, receive, send)


class Unauthenticated(Exception):
    """No valid token on a request that needs one: answered 401 with `WWW-Authenticate`."""

    def __init__(self, message: str = "a valid bearer token (Authorization: Bearer …) or X-API-Key is required"):
        super().__init__(message)
        self.message = message


def www_authenticate(error: str = "invalid_token", description: str = "") -> str:
    value = f'Bearer realm="artifact-mcp", error="{error}"'
    # Header values are latin-1 on the wire, and a quote would end the quoted-string early.
    description = description.replace("…", "...").encode("ascii", "replace").decode().replace('"', "'")
    return value + (f', error_description="{description}"' if description else "")


class TokenStoreUnavailable:
    """A token that cannot be checked because the token store (a shared catalog's database) is unreachable is
    answered 503 with Retry-After, not 401 (the token may well be good) and not a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Unavailable as exc:
            if scope["type"] != "http":
                raise
            body = json.dumps({"detail": exc.message}).encode()
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"5"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
