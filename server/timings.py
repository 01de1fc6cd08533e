"""Opt-in per-request handler timings (ARTIFACT_MCP_TIMINGS_FILE), for benchmarks.

Off by default. When set, a middleware times every inbound request inside the server (after the
transport has decoded it, until the handler's result is ready), keyed by tool name for
`tools/call` and by JSON-RPC method otherwise. On exit the file gets, per key, the count,
p50/p95/max in milliseconds and the raw samples in call order (so a benchmark can slice phases).
"""

from __future__ import annotations

import atexit
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext


def _pct(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(p * len(sorted_ms)))]


class Timings:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.samples: dict[str, list[float]] = {}
        atexit.register(self.write)

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        key = ctx.method
        if key == "tools/call" and ctx.params:
            key = str(ctx.params.get("name"))
        start = time.perf_counter()
        try:
            return await call_next(ctx)
        finally:
            self.samples.setdefault(key, []).append((time.perf_counter() - start) * 1000)

    def wrap_lifespan(
        self, lifespan: Callable[[Any], AbstractAsyncContextManager[Any]]
    ) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
        """Also write when the server's lifespan ends (before the store closes), not only at exit."""

        @asynccontextmanager
        async def wrapped(app: Any) -> AsyncIterator[Any]:
            async with lifespan(app) as state:
                try:
                    yield state
                finally:
                    self.write()

        return wrapped

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, ms in self.samples.items():
            s = sorted(ms)
            out[key] = {"count": len(s), "p50_ms": _pct(s, 0.5), "p95_ms": _pct(s, 0.95), "max_ms": s[-1],
                        "samples_ms": [round(v, 4) for v in ms]}
        return out

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.summary()))
        tmp.replace(self.path)
