"""Every error a REST client can cause, as JSON with a useful message: never a 5xx, never plain text.

- 422: FastAPI's request validation and the use cases' own (a storage model refusing a body) share one `detail`
  list (`type, loc, msg, input, ctx`). Echoed input is made printable first: a lone surrogate in it made
  FastAPI's default handler fail to encode its answer (a 500 and a dropped connection).
- Store errors by kind (404, 409, 413, 403, 503; `invalid` is a 422 at `loc: ["body"]`).
- Unknown paths: JSON 404; a known path with the wrong method: JSON 405 with `Allow`.
"""

from __future__ import annotations

import math
from typing import Any

import starlette.formparsers
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from artifact_mcp.server.auth.http import Unauthenticated, www_authenticate
from artifact_mcp.storage.errors import StoreError
from artifact_mcp.storage.text import printable

STATUS_FOR: dict[str, int] = {
    "invalid": 422, "not_found": 404, "conflict": 409, "too_large": 413, "forbidden": 403, "unavailable": 503,
}
_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def _strict_decode(src: bytes | bytearray, codec: str) -> str:
    """Multipart field values and file names as the part's charset (UTF-8 by default), or an error. Starlette
    falls back to Latin-1 silently (`_user_safe_decode`), which stores mojibake; its MultiPartException becomes a
    400 that the REST route class turns into a 422."""
    try:
        return src.decode(codec or "utf-8")
    except (UnicodeDecodeError, LookupError) as exc:
        raise starlette.formparsers.MultiPartException(
            f"a multipart field is not valid {codec or 'utf-8'} text ({exc.reason} at byte {getattr(exc, 'start', 0)})"
        ) from None


starlette.formparsers._user_safe_decode = _strict_decode  # no public hook: see _strict_decode


def _safe(value: Any) -> Any:
    """JSON-ready, with every string printable (lone surrogates replaced)."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {_safe(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    if isinstance(value, bytes):
        return printable(value.decode("utf-8", "replace"))
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # e.g. JSON's 1e400 parsed as inf: JSON cannot carry it back
    if value is None or isinstance(value, bool | int | float):
        return value
    return printable(str(value))


_NUMBER_RULES = {"less_than_equal", "less_than", "greater_than_equal", "greater_than", "multiple_of"}


def _as_number(value: Any) -> Any:
    """A query parameter that parsed as a number and broke a numeric rule is echoed as that number (the seeds'
    422s show `"input": 150`, not the query string's `"150"`)."""
    for kind in (int, float):
        try:
            number = kind(value)
        except (TypeError, ValueError):
            continue
        return number if math.isfinite(number) else value  # JSON has no inf/nan: keep the text
    return value


def validation_detail(errors: list[Any], prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        value = err.get("input")
        if err.get("type") in _NUMBER_RULES and isinstance(value, str):
            value = _as_number(value)
        item = {"type": err.get("type"), "loc": [*prefix, *err.get("loc", ())], "msg": err.get("msg"),
                "input": value}
        if "ctx" in err:
            item["ctx"] = err["ctx"]
        out.append(item)
    return _safe(jsonable_encoder(out, custom_encoder={Exception: str}))


def install_error_handlers(api: FastAPI) -> None:
    @api.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_detail(list(exc.errors()))}, status_code=422)

    @api.exception_handler(ValidationError)
    async def model_invalid(request: Request, exc: ValidationError) -> JSONResponse:
        # A use case built a storage model from an already-validated body and the model refused it.
        return JSONResponse({"detail": validation_detail(exc.errors(include_url=False), ("body",))},
                            status_code=422)

    @api.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        status = STATUS_FOR.get(exc.kind, 400)
        if status == 422:  # the same `detail` list as FastAPI's request validation errors
            detail = [{"type": "value_error", "loc": ["body"], "msg": printable(exc.message), "input": None,
                       "ctx": {}}]
            return JSONResponse({"detail": detail, "error": exc.kind}, status_code=422)
        return JSONResponse({"detail": printable(exc.message), "error": exc.kind}, status_code=status)

    @api.exception_handler(Unauthenticated)
    async def unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "error": "unauthenticated"}, status_code=401,
                            headers={"WWW-Authenticate": www_authenticate(description=exc.message)})

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.url.path!r}; see /openapi.json for the API"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            detail = f"{request.method} is not allowed on {request.url.path!r}" + (
                f"; allowed: {allowed}" if allowed else "")
        error = _HTTP_ERRORS.get(exc.status_code, "http_error")
        return JSONResponse({"detail": _safe(detail), "error": error}, status_code=exc.status_code,
                            headers=exc.headers)
