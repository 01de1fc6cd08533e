"""What both REST dialects share: the route class that authenticates and limits bodies before FastAPI reads them,
the error bodies, and the dependency that turns a principal and a path scope into a checked `Access`.

Every route checks, in this order: a valid token (401), the body size (413, before the body is read), the
path/query/body shapes (422, FastAPI's `detail` list), the principal's scope and permission (403), then the store
(404/409/413/422).
"""

from __future__ import annotations

import codecs
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from artifact_mcp.server.auth.http import Unauthenticated, principal_of
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.storage.errors import TooLarge

# Multipart framing and the descriptive form fields on top of the file itself.
MULTIPART_OVERHEAD = 1024 * 1024

bearer = HTTPBearer(auto_error=False, description="A token from `artifact-mcp token create`.")
api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same token, as X-API-Key.")
# Declared on every route so the OpenAPI document names both schemes; the middleware has already checked them.
Credentials = tuple[Annotated[Any, Security(bearer)], Annotated[Any, Security(api_key)]]


class ErrorBody(BaseModel):
    """Errors other than validation: what went wrong, in words the caller can act on."""

    detail: str
    error: str


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid token (see the WWW-Authenticate header)."},
    403: {"model": ErrorBody, "description": "The token's principal may not do this in this scope."},
    413: {"model": ErrorBody, "description": "The request body or file is over the server's limit."},
    503: {"model": ErrorBody, "description": "The store is starting, stopping or changing owner; retry."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such artifact here."}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorBody,
                                                   "description": "expected_version is stale."}}


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so FastAPI's body reading passes it through as is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is over this route's {limit}-byte limit (ARTIFACT_MCP_MAX_UPLOAD_BYTES "
                              "sets it); send less, or a file through POST …/artifacts/upload")


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return wrapped


def route_class(runtime: Runtime) -> type[APIRoute]:
    settings = runtime.settings
    # JSON escaping makes text content longer than its bytes; base64 `data_base64` is 4/3 of them.
    json_limit = settings.max_upload_bytes * 4 // 3 + 1024 * 1024
    multipart_limit = settings.max_upload_bytes + MULTIPART_OVERHEAD

    class RestRoute(APIRoute):
        """Authentication and the body limit come before FastAPI reads or validates anything."""

        def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                if runtime.auth_enabled and principal_of(request) is None:
                    raise Unauthenticated()
                content_type = request.headers.get("content-type", "")
                multipart = content_type.startswith("multipart/")
                if multipart:
                    _check_charset(content_type)
                limit = multipart_limit if multipart else json_limit
                length = request.headers.get("content-length", "")
                if length.isdigit() and int(length) > limit:
                    raise TooLarge(f"request body is {length} bytes, over this route's {limit}-byte limit "
                                   "(ARTIFACT_MCP_MAX_UPLOAD_BYTES sets it); nothing was stored")
                # Chunked bodies carry no length: count the bytes as they arrive. (Starlette's own limit answers
                # with a bare message and no way to say which limit; there is no public hook for this.)
                request._receive = _limited(request.receive, limit)
                try:
                    return await handler(request)
                except HTTPException as exc:
                    if exc.status_code != 400:
                        raise
                    # FastAPI answers a body it cannot decode (not UTF-8, broken multipart) with a bare 400: give
                    # it the 422 `detail` list every other malformed input gets.
                    cause = exc.__cause__
                    msg = f"{exc.detail}: {cause}" if cause is not None else str(exc.detail)
                    raise RequestValidationError([{
                        "type": "json_invalid" if not multipart else "value_error", "loc": ("body",),
                        "msg": msg + ("; send UTF-8 JSON" if not multipart else "; send multipart/form-data"),
                        "input": None, "ctx": {}}]) from exc

            return guarded

    return RestRoute


def _check_charset(content_type: str) -> None:
    """A multipart body's declared charset must exist: Starlette reads an unknown one as Latin-1, silently."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset":
            try:
                codecs.lookup(value.strip().strip('"'))
            except LookupError:
                raise RequestValidationError([{
                    "type": "value_error", "loc": ("header", "content-type"), "input": value, "ctx": {},
                    "msg": f"unknown charset {value!r}; send multipart/form-data in UTF-8"}]) from None


def declared_type(content_type: str | None) -> str | None:
    """A multipart part's declared type, unless it is the label clients give every part they cannot name
    (application/octet-stream): let detection do better then."""
    if not content_type or content_type.split(";")[0].strip().lower() == "application/octet-stream":
        return None
    return content_type
