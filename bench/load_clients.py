"""The load benchmark's clients (bench/load.py): the operations they loop over, each checked, the warm-up, and the
read-back of every acknowledged write."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

OPS = ("create", "get", "list", "query")
WORDS = [
    "artifact", "agent", "report", "summary", "memory", "vector", "index", "chunk", "query", "cursor", "latency",
    "durable", "store", "transcript", "result", "thread", "namespace", "version", "embedding", "retrieval",
    "context", "model", "catalog", "blob", "hybrid", "lexical", "semantic", "rank", "budget", "forecast",
]
ERROR_SAMPLES = 10


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_samples: list[str] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)  # acknowledged creates: artifact_id -> content
    written_ids: list[str] = field(default_factory=list)  # the same ids, for random picks

    def error(self, op: str, message: str) -> None:
        self.errors[op] += 1
        if len(self.error_samples) < ERROR_SAMPLES:
            self.error_samples.append(f"{op}: {message[:300]}")


class CallFailed(Exception):
    pass


async def call(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    if result.is_error or result.structured_content is None:
        text = result.content[0].text if result.content else str(result)  # type: ignore[union-attr]
        raise CallFailed(f"{name}: {text}")
    return result.structured_content


def text_for(rng: random.Random, tag: str) -> str:
    return f"{tag}: " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60)))


@asynccontextmanager
async def open_session(url: str, token: str, mode: str) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60, read=300)) as http,
                Client(streamable_http_client(url, http_client=http), mode=mode) as client):
        yield client


async def run_op(op: str, label: str, n: int, client: Client, res: Results, rng: random.Random) -> float:
    """One call of `op` by client `n`, checked; its round trip in ms (a failure raises)."""
    t0 = time.perf_counter()
    if op == "create":
        content = text_for(rng, f"client {n} {label}")
        out = await call(client, "create_artifact", {"name": f"load-{n}-{label}", "content": content,
                                                     "thread_id": f"client-{n}", "tags": ["load"]})
        ms = (time.perf_counter() - t0) * 1000
        res.written[out["artifact_id"]] = content
        res.written_ids.append(out["artifact_id"])
    elif op == "get":
        aid = rng.choice(res.written_ids)
        out = await call(client, "get_artifact", {"artifact_id": aid})
        ms = (time.perf_counter() - t0) * 1000
        if out["content"] != res.written[aid]:
            raise CallFailed(f"get_artifact {aid} read back different content")
    elif op == "list":
        args: dict[str, Any] = {"limit": 20}
        if rng.random() < 0.5:
            args["thread_id"] = f"client-{n}"
        await call(client, "list_artifacts", args)
        ms = (time.perf_counter() - t0) * 1000
    else:
        await call(client, "query_artifacts", {"query": " ".join(rng.sample(WORDS, 3)), "top_k": 5})
        ms = (time.perf_counter() - t0) * 1000
    return ms


async def warm_up(n: int, client: Client, res: Results) -> list[float]:
    """Each operation once, before the clock: the MCP client lists the tools and compiles a tool's output-schema
    validator at its first call of it (measured: 50 clients doing that at once made the first second's p99 1.4 s
    against ~0.5 s after it, and all of it in the benchmark's own process). Round trips in ms; a failure counts
    as an error of "warm-up <op>" (reported with the run's errors) instead of ending the run."""
    rng = random.Random(-1 - n)
    ms: list[float] = []
    for op in OPS:
        try:
            ms.append(await run_op(op, "warm-up", n, client, res, rng))
        except Exception as exc:
            res.error(f"warm-up {op}", f"{type(exc).__name__}: {exc}")
    return ms


async def worker(n: int, client: Client, res: Results, start: anyio.Event, deadline: list[float],
                 mix: list[float]) -> None:
    rng = random.Random(n)
    seq = 0
    await start.wait()
    while time.perf_counter() < deadline[0]:
        op = rng.choices(OPS, weights=mix)[0]
        if op == "get" and not res.written_ids:
            op = "create"
        seq += op == "create"
        try:
            ms = await run_op(op, str(seq), n, client, res, rng)
        except Exception as exc:  # every failure counts, whatever raised it
            res.error(op, f"{type(exc).__name__}: {exc}")
            continue
        res.latencies[op].append(ms)


async def verify(urls: list[str], token: str, mode: str, written: dict[str, str]) -> dict[str, Any]:
    """Read back every acknowledged create (readers spread over the processes); a missing or different
    artifact is a lost write."""
    ids = list(written)
    lost: list[str] = []
    t0 = time.perf_counter()

    async def reader(url: str, part: list[str]) -> None:
        async with open_session(url, token, mode) as client:
            for aid in part:
                try:
                    out = await call(client, "get_artifact", {"artifact_id": aid})
                    if out["content"] != written[aid]:
                        lost.append(f"{aid}: content differs")
                except Exception as exc:
                    lost.append(f"{aid}: {type(exc).__name__}: {exc}"[:300])

    async with anyio.create_task_group() as tg:
        for i in range(16):
            tg.start_soon(reader, urls[(i + 1) % len(urls)], ids[i::16])
    async with open_session(urls[0], token, mode) as client:
        listed = (await call(client, "list_artifacts", {"tags": ["load"], "limit": 1}))["total"]
    return {"checked": len(ids), "lost": len(lost), "lost_samples": lost[:ERROR_SAMPLES],
            "listed_with_tag": listed, "seconds": time.perf_counter() - t0}


async def index_backlog(url: str, token: str, mode: str, drain_seconds: float) -> dict[str, Any]:
    """Artifacts still waiting for their background index job at the end, and how long they take to drain."""
    async with open_session(url, token, mode) as client:
        async def pending() -> int:
            return (await call(client, "list_artifacts", {"status": "pending", "limit": 1}))["total"]

        at_end = await pending()
        t0 = time.perf_counter()
        left = at_end
        while left and time.perf_counter() - t0 < drain_seconds:
            await anyio.sleep(1)
            left = await pending()
        return {"pending_at_end": at_end, "pending_after_drain": left,
                "drain_seconds": time.perf_counter() - t0 if at_end else 0.0}
