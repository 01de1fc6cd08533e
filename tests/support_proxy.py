"""A round-robin HTTP reverse proxy on 127.0.0.1: several server processes behind one address, as a load
balancer without sticky sessions would put them. Each request goes to the next backend; responses (SSE too)
are streamed through. Every request is recorded with the backend that answered it."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import httpx
import uvicorn
from starlette.types import Receive, Scope, Send

from tests.support_http import free_port

HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade"}


@dataclass
class Routed:
    backend: int  # the backend's port
    method: str  # HTTP method
    mcp_method: str | None  # the Mcp-Method header of 2026-07-28 requests
    mcp_name: str | None  # Mcp-Name: the tool or resource
    status: int


@dataclass
class RoundRobin:
    backends: list[int]
    log: list[Routed] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._next = itertools.cycle(self.backends)
        self._http = httpx.AsyncClient(timeout=None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # served with lifespan="off": nothing else arrives
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        port = next(self._next)
        headers = [(k, v) for k, v in scope["headers"] if k not in HOP_BY_HOP]
        query = f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
        request = self._http.build_request(scope["method"], f"http://127.0.0.1:{port}{scope['path']}{query}",
                                           headers=headers, content=body)
        response = await self._http.send(request, stream=True)
        try:
            lower = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.log.append(Routed(port, scope["method"], lower.get("mcp-method"), lower.get("mcp-name"),
                                   response.status_code))
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()


@asynccontextmanager
async def round_robin_proxy(backends: list[int], port: int | None = None) -> AsyncIterator[tuple[int, RoundRobin]]:
    """Serve a `RoundRobin` over `backends` on `port` (default: a free one); yields (port, proxy)."""
    proxy = RoundRobin(backends)
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(proxy, host="127.0.0.1", port=port, log_config=None, log_level="warning",
                                           lifespan="off"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        while not server.started:
            await anyio.sleep(0.02)
        try:
            yield port, proxy
        finally:
            server.should_exit = True
    await proxy.aclose()
