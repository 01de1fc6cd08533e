"""`GET|HEAD /download/{token}`: serve a signed download link, streaming, with byte ranges.

The link is the credential (no Authorization header): its signature, expiry and artifact version are checked by
the store (`resolve_download`); with auth on, the API token that asked for it must still be active and still see
the artifact's scope. Every refusal is the same 403, so a link reveals nothing about why it failed.

Bytes are read through fsspec in STREAM_CHUNK_BYTES pieces on a worker thread and sent as they come: memory stays
flat for any file size (uvicorn waits for the socket to drain between pieces). Starlette's FileResponse does ranges
too, but only for local paths; blobs may live on any fsspec filesystem.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import BinaryIO
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from artifact_mcp.server.runtime import Runtime
from artifact_mcp.storage.blobs import STREAM_CHUNK_BYTES
from artifact_mcp.storage.content import is_text_mime
from artifact_mcp.storage.errors import Forbidden
from artifact_mcp.storage.links import DENIED, DownloadTarget

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class Unsatisfiable(Exception):
    pass


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) asked by a single-range `Range` header; None to send everything (no header, another
    unit, several ranges or bad syntax: RFC 9110 lets a server ignore those); Unsatisfiable when none of it exists."""
    if header is None:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)  # bytes=-n: the last n bytes
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if last and int(last) < start:
        return None  # invalid range: ignored
    if start >= size:
        raise Unsatisfiable
    return start, end


def content_disposition(file_name: str) -> str:
    fallback = file_name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(file_name, safe='')}"


async def _chunks(fh: BinaryIO, start: int, end: int) -> AsyncIterator[bytes]:
    try:
        if start:
            await anyio.to_thread.run_sync(fh.seek, start)
        remaining = end - start
        while remaining > 0:
            chunk = await anyio.to_thread.run_sync(fh.read, min(STREAM_CHUNK_BYTES, remaining))
            if not chunk:
                raise OSError("blob ended early")  # the client sees a short body, never wrong bytes
            remaining -= len(chunk)
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(fh.close)


async def serve_target(runtime: Runtime, target: DownloadTarget, request: Request) -> Response:
    """The response for a download of `target` (from `resolve_download` or `download_target`): streamed, with
    ranges, for GET and HEAD. Routes that authenticate the caller otherwise (the REST mirror) reuse it."""
    size = target.size_bytes
    etag = f'"{target.sha256 or target.artifact_id}"'
    content_type = target.content_type
    if is_text_mime(content_type) and "charset" not in content_type.lower():
        content_type += "; charset=utf-8"
    headers = {
        "Accept-Ranges": "bytes", "ETag": etag, "Content-Disposition": content_disposition(target.file_name),
        "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff",
        # User content served from this origin must never run as a page of it.
        "Content-Security-Policy": "sandbox",
    }
    if_range = request.headers.get("if-range")
    try:
        wanted = byte_range(request.headers.get("range") if if_range in (None, etag) else None, size)
    except Unsatisfiable:
        return JSONResponse({"detail": f"range not satisfiable: the file has {size} bytes",
                             "error": "range_not_satisfiable"}, status_code=416,
                            headers={"Content-Range": f"bytes */{size}"})
    start, end = wanted or (0, size)
    status = 200
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=content_type)
    if target.blob_key is None:
        body = (target.text or "").encode()[start:end]
        return Response(body, status_code=status, headers=headers, media_type=content_type)
    blobs = runtime.store.blobs
    try:
        fh = await anyio.to_thread.run_sync(blobs.reader, target.blob_key)
    except FileNotFoundError:
        return JSONResponse({"detail": "the file's bytes are missing from the blob store", "error": "not_found"},
                            status_code=404)
    return StreamingResponse(_chunks(fh, start, end), status_code=status, headers=headers, media_type=content_type)


def downloads_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["downloads"])

    async def authorized(token: str) -> DownloadTarget:
        target = await runtime.store.resolve_download(token)
        if runtime.auth_enabled:
            # Revocation: the token that asked for the link must still be valid and still see the scope.
            record = await anyio.to_thread.run_sync(runtime.tokens.get, target.token_id) if target.token_id else None
            if record is None or not record.active():
                raise Forbidden(DENIED)
            principal = record.principal()
            if not (principal.sees(target.scope) and principal.can("read")):
                raise Forbidden(DENIED)
        return target

    @router.api_route(
        "/download/{token}", methods=["GET", "HEAD"], response_class=Response,
        summary="Download an artifact version through a signed link",
        description="The link comes from get_artifact_download_url. Supports `Range: bytes=a-b`, `bytes=a-` and "
                    "`bytes=-n` (206 with Content-Range; 416 when unsatisfiable). 403 for an invalid, tampered, "
                    "expired or revoked link, or a deleted version.",
        responses={200: {"description": "The bytes"}, 206: {"description": "The requested range"},
                   403: {"description": "Invalid or expired link"}, 416: {"description": "Range not satisfiable"}},
    )
    async def download(token: str, request: Request) -> Response:
        return await serve_target(runtime, await authorized(token), request)

    return router
