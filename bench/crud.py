"""CRUD benchmark through a real MCP session over stdio (a benchmark, not a test).

For each size N (default 10,000 and 100,000 artifacts of 4 KB text), a fresh data directory and a
fresh `artifact-mcp serve` subprocess:

1. create N artifacts: N - S with `--concurrency` calls in flight (throughput), then the last S one
   at a time (latency at size ~N);
2. get: `--samples` random artifacts, one at a time;
3. list, first page (limit `--page`), `--samples` times;
4. walk pages of 200 with keyset cursors until 90% deep, then list the next page (limit `--page`)
   with that cursor `--samples` times;
5. the server's peak RSS (VmHWM of the server process, read from /proc).

Latencies are reported twice: "client" is the round trip seen by the MCP client (JSON-RPC over
stdio, client and server serialization, validation); "server" is the tool handler's duration inside
the server, recorded by the opt-in ARTIFACT_MCP_TIMINGS_FILE middleware (server/timings.py).

    .venv/bin/python bench/crud.py --sizes 10000 100000 --out bench/results/crud.json

Progress goes to stderr; a table to stdout; full figures (and settings) to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from common import add_server_args, dir_size, find_server_pid, log, pct, proc_status, stats, write_report
from mcp import Client, StdioServerParameters

REPO = Path(__file__).resolve().parent.parent
WALK_PAGE = 200
WORDS = [
    "artifact", "agent", "report", "summary", "memory", "vector", "index", "chunk", "query", "cursor", "page",
    "latency", "durable", "store", "transcript", "result", "json", "code", "thread", "namespace", "workspace",
    "version", "pinned", "expiry", "embedding", "retrieval", "context", "token", "model", "tool", "server",
    "client", "stdio", "catalog", "blob", "duckdb", "hybrid", "lexical", "semantic", "rank",
]




def text_4k(rng: random.Random, i: int) -> str:
    words: list[str] = [f"artifact-{i}"]
    size = len(words[0])
    while size < 4096:
        w = rng.choice(WORDS)
        words.append(w)
        size += len(w) + 1
    return " ".join(words)[:4096]












class Bench:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, name: str, args: dict[str, Any]) -> tuple[dict[str, Any], float]:
        t0 = time.perf_counter()
        result = await self.client.call_tool(name, args)
        ms = (time.perf_counter() - t0) * 1000
        if result.is_error or result.structured_content is None:
            text = result.content[0].text if result.content else result  # type: ignore[union-attr]
            raise RuntimeError(f"{name} failed: {text}")
        return result.structured_content, ms


async def run_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(n)
    workdir = Path(tempfile.mkdtemp(prefix=f"crud-bench-{n}-", dir=args.tmp))
    data_dir = str(workdir / "data")
    timings_file = workdir / "timings.json"
    env = {**os.environ, "ARTIFACT_MCP_TIMINGS_FILE": str(timings_file), "ARTIFACT_MCP_LOG_LEVEL": "WARNING"}
    for key, value in args.env:
        env[key] = value
    params = StdioServerParameters(command=str(REPO / ".venv/bin/artifact-mcp"),
                                   args=["serve", "--data-dir", data_dir], env=env, cwd=str(workdir))
    seq = min(args.samples, n // 2)
    bulk = n - seq
    result: dict[str, Any] = {"artifacts": n}
    counts = {"create_artifact": 0, "get_artifact": 0, "list_artifacts": 0}
    async with Client(params, mode=args.mode, read_timeout_seconds=120) as client:
        pid = find_server_pid(data_dir)
        log(f"N={n}: server pid {pid}, data dir {data_dir}")
        b = Bench(client)
        ids: list[str] = []

        # 1. create: bulk with concurrency, then a sequential sample
        next_i = 0
        bulk_ms: list[float] = []
        t_start = time.perf_counter()
        last_report = t_start

        async def worker() -> None:
            nonlocal next_i, last_report
            while next_i < bulk:
                i = next_i
                next_i += 1
                out, ms = await b.call("create_artifact", {"name": f"bench-{i}", "content": text_4k(rng, i),
                                                           "tags": ["bench"]})
                ids.append(out["artifact_id"])
                bulk_ms.append(ms)
                now = time.perf_counter()
                if now - last_report > 10:
                    last_report = now
                    log(f"N={n}: created {len(ids)}/{n} ({len(ids) / (now - t_start):.0f}/s)")

        async with anyio.create_task_group() as tg:
            for _ in range(args.concurrency):
                tg.start_soon(worker)
        bulk_s = time.perf_counter() - t_start
        counts["create_artifact"] += bulk
        seq_ms: list[float] = []
        t_seq = time.perf_counter()
        for i in range(bulk, n):
            out, ms = await b.call("create_artifact", {"name": f"bench-{i}", "content": text_4k(rng, i),
                                                       "tags": ["bench"]})
            ids.append(out["artifact_id"])
            seq_ms.append(ms)
        seq_s = time.perf_counter() - t_seq
        counts["create_artifact"] += seq
        result["create"] = {
            "concurrency": args.concurrency, "bulk_count": bulk, "bulk_seconds": bulk_s,
            "bulk_per_second": bulk / bulk_s, "bulk_client": stats(bulk_ms),
            "sequential_per_second": seq / seq_s, "sequential_client": stats(seq_ms),
        }
        log(f"N={n}: created {n} in {bulk_s + seq_s:.1f}s ({bulk / bulk_s:.0f}/s with {args.concurrency} in flight)")

        # 2. get
        get_ms: list[float] = []
        for aid in rng.sample(ids, min(args.samples, len(ids))):
            out, ms = await b.call("get_artifact", {"artifact_id": aid})
            assert len(out["content"]) == 4096
            get_ms.append(ms)
        counts["get_artifact"] += len(get_ms)
        result["get_client"] = stats(get_ms)
        log(f"N={n}: get p50 {pct(get_ms, .5):.2f} ms p95 {pct(get_ms, .95):.2f} ms")

        # 3. list, first page
        first_ms: list[float] = []
        for _ in range(args.samples):
            out, ms = await b.call("list_artifacts", {"limit": args.page})
            first_ms.append(ms)
        assert out["total"] == n, out["total"]
        counts["list_artifacts"] += args.samples
        result["list_first_client"] = stats(first_ms)
        log(f"N={n}: list first page p50 {pct(first_ms, .5):.2f} ms p95 {pct(first_ms, .95):.2f} ms")

        # 4. walk to 90% depth with keyset cursors, then time the next page
        target = int(n * 0.9)
        seen, cursor, walk_calls = 0, None, 0
        t_walk = time.perf_counter()
        while seen < target:
            req: dict[str, Any] = {"limit": min(WALK_PAGE, target - seen)}
            if cursor:
                req["cursor"] = cursor
            out, _ = await b.call("list_artifacts", req)
            seen += len(out["artifacts"])
            cursor = out["next_cursor"]
            walk_calls += 1
        walk_s = time.perf_counter() - t_walk
        counts["list_artifacts"] += walk_calls
        deep_ms: list[float] = []
        for _ in range(args.samples):
            out, ms = await b.call("list_artifacts", {"limit": args.page, "cursor": cursor})
            deep_ms.append(ms)
        assert len(out["artifacts"]) == args.page
        counts["list_artifacts"] += args.samples
        result["walk"] = {"depth": seen, "calls": walk_calls, "page": WALK_PAGE, "seconds": walk_s}
        result["list_deep_client"] = stats(deep_ms)
        log(f"N={n}: list page at {seen} deep p50 {pct(deep_ms, .5):.2f} ms p95 {pct(deep_ms, .95):.2f} ms")

        # 5. server memory
        if pid is not None:
            st = proc_status(pid)
            result["server_peak_rss_mb"] = st.get("VmHWM", 0) / 1024
            result["server_rss_mb"] = st.get("VmRSS", 0) / 1024
        result["data_dir_mb"] = dir_size(Path(data_dir)) / 2**20
    # Client closed: the server wrote its timings when its lifespan ended.
    for _ in range(100):
        if timings_file.exists():
            break
        await anyio.sleep(0.1)
    if timings_file.exists():
        server = json.loads(timings_file.read_text())

        def slice_(tool: str, start: int, count: int) -> dict[str, float] | None:
            samples = server.get(tool, {}).get("samples_ms", [])
            if len(samples) != counts[tool]:
                log(f"warning: server recorded {len(samples)} {tool} calls, expected {counts[tool]}")
                return None
            return stats(samples[start:start + count])

        result["create"]["bulk_server"] = slice_("create_artifact", 0, bulk)
        result["create"]["sequential_server"] = slice_("create_artifact", bulk, seq)
        result["get_server"] = slice_("get_artifact", 0, len(get_ms))
        result["list_first_server"] = slice_("list_artifacts", 0, args.samples)
        result["list_deep_server"] = slice_("list_artifacts", args.samples + walk_calls, args.samples)
    else:
        log("warning: no server timings file")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def ms_pair(d: dict[str, Any] | None, key: str) -> str:
    return "-" if not d else f"{d[key]:.2f}"


def table(results: list[dict[str, Any]]) -> str:
    head = f"{'metric':<34}" + "".join(f"{r['artifacts']:>14,}" for r in results)
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, values: list[str]) -> None:
        rows.append((label, values))

    row("create/s (bulk, concurrent)", [f"{r['create']['bulk_per_second']:.0f}" for r in results])
    row("create/s (sequential)", [f"{r['create']['sequential_per_second']:.0f}" for r in results])
    for label, key in (("create seq", "create.sequential"), ("create bulk", "create.bulk"), ("get", "get"),
                       ("list first page", "list_first"), ("list 90% deep", "list_deep")):
        for side in ("client", "server"):
            for p in ("p50_ms", "p95_ms"):
                vals = []
                for r in results:
                    if key.startswith("create."):
                        d = r["create"].get(f"{key.split('.')[1]}_{side}")
                    else:
                        d = r.get(f"{key}_{side}")
                    vals.append(ms_pair(d, p))
                row(f"{label} {side} {p[:3]} ms", vals)
    row("deep/first p95 (server)", [
        f"{r['list_deep_server']['p95_ms'] / r['list_first_server']['p95_ms']:.2f}"
        if r.get("list_deep_server") and r.get("list_first_server") else "-" for r in results])
    row("deep/first p95 (client)", [
        f"{r['list_deep_client']['p95_ms'] / r['list_first_client']['p95_ms']:.2f}" for r in results])
    row("server peak RSS MB (VmHWM)", [f"{r.get('server_peak_rss_mb', float('nan')):.0f}" for r in results])
    row("data dir MB", [f"{r['data_dir_mb']:.0f}" for r in results])
    lines = [head, "-" * len(head)]
    lines += [f"{label:<34}" + "".join(f"{v:>14}" for v in values) for label, values in rows]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    results = []
    for n in args.sizes:
        results.append(await run_size(n, args))
        print(table(results[-1:]), file=sys.stderr, flush=True)
    report = {
        "benchmark": "crud", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
        "cpus": os.cpu_count(), "python": platform.python_version(), "mode": args.mode,
        "content_bytes": 4096, "page": args.page, "samples": args.samples, "env": dict(args.env),
        "results": results,
    }
    print(table(results))
    if args.out:
        write_report(Path(args.out), report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--out", default=str(REPO / "bench/results/crud.json"))
    parser.add_argument("--concurrency", type=int, default=8, help="creates in flight during the bulk load")
    parser.add_argument("--samples", type=int, default=300, help="timed calls per latency figure")
    parser.add_argument("--page", type=int, default=50, help="page size of the timed list calls")
    add_server_args(parser)
    args = parser.parse_args()
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
