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

The S sequential creates run while the index jobs of the bulk load are still being worked through (the run checks
that artifacts were still pending after the last of them, and says so). As a baseline, in the same run, a trivial
`MCPServer` (one `echo` tool, `mcp.run()` on stdio, spawned the same way) answers `--samples` calls before and as
many after the artifact server's phases; each tool's client p50 is also given as a ratio to the trivial tool's
(issue 12's targets: get <= 2x, list(50) <= 4x, create <= 3x while index jobs run). `--models` runs every size once
per embedding model (a fresh server each), so the default model and `hash:384` compare in one run.

Latencies are reported twice: "client" is the round trip seen by the MCP client (JSON-RPC over
stdio, client and server serialization, validation); "server" is the tool handler's duration inside
the server, recorded by the opt-in ARTIFACT_MCP_TIMINGS_FILE middleware (server/timings.py).

    .venv/bin/python bench/crud.py --sizes 10000 100000 --out bench/results/crud.json
    .venv/bin/python bench/crud.py --sizes 10000 --models default hash:384

Progress goes to stderr; a table to stdout; full figures (and settings) to --out as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
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
from common import (
    TRIVIAL,
    add_server_args,
    descendants,
    dir_size,
    find_server_pid,
    log,
    pct,
    proc_status,
    stats,
    write_report,
)
from mcp import Client, StdioServerParameters

REPO = Path(__file__).resolve().parent.parent
WALK_PAGE = 200

RATIO_TARGETS = {"get": 2.0, "list_first": 4.0, "create_seq": 3.0}
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


async def trivial_calls(args: argparse.Namespace, workdir: Path) -> list[float]:
    """Round trips of `--samples` calls of the trivial server's tool (after 20 warm-up calls), one at a time."""
    script = workdir / "trivial_server.py"
    script.write_text(TRIVIAL)
    params = StdioServerParameters(command=sys.executable, args=[str(script)], env=dict(os.environ), cwd=str(workdir))
    ms: list[float] = []
    async with Client(params, mode=args.mode, read_timeout_seconds=60) as client:
        for i in range(20 + args.samples):
            t0 = time.perf_counter()
            result = await client.call_tool("echo", {"text": f"ping {i}"})
            if result.is_error:
                raise RuntimeError(f"trivial echo failed: {result}")
            if i >= 20:
                ms.append((time.perf_counter() - t0) * 1000)
    return ms


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


async def run_size(n: int, model: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(n)
    workdir = Path(tempfile.mkdtemp(prefix=f"crud-bench-{n}-", dir=args.tmp))
    data_dir = str(workdir / "data")
    timings_file = workdir / "timings.json"
    env = {**os.environ, "ARTIFACT_MCP_TIMINGS_FILE": str(timings_file), "ARTIFACT_MCP_LOG_LEVEL": "WARNING",
           "ARTIFACT_MCP_EMBEDDING_MODEL": model}
    for key, value in args.env:
        env[key] = value
    if getattr(args, "catalog", None):
        env["ARTIFACT_MCP_CATALOG_PATH"] = args.catalog
    params = StdioServerParameters(command=str(REPO / ".venv/bin/artifact-mcp"),
                                   args=["serve", "--data-dir", data_dir], env=env, cwd=str(workdir))
    seq = min(args.samples, n // 2)
    bulk = n - seq
    result: dict[str, Any] = {"artifacts": n, "model": model}
    trivial_ms = await trivial_calls(args, workdir)
    log(f"N={n} {model}: trivial echo before p50 {pct(trivial_ms, .5):.2f} ms")
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
        # Were index jobs still running behind the timed creates? Jobs run oldest first, so artifacts still waiting
        # after the last timed create mean the runner was busy with the bulk load's jobs all along.
        waiting = 0
        for status in ("pending", "processing"):
            out, _ = await b.call("list_artifacts", {"limit": 1, "status": status})
            waiting += out["total"]
        counts["list_artifacts"] += 2
        result["create"] = {
            "concurrency": args.concurrency, "bulk_count": bulk, "bulk_seconds": bulk_s,
            "bulk_per_second": bulk / bulk_s, "bulk_client": stats(bulk_ms),
            "sequential_per_second": seq / seq_s, "sequential_client": stats(seq_ms),
            "not_yet_indexed_after_sequential": waiting,
        }
        log(f"N={n}: sequential create p50 {pct(seq_ms, .5):.2f} ms; {waiting} artifacts not yet indexed after them")
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
            # The owner's index preparation child holds its own copy of the model.
            result["child_peak_rss_mb"] = sum(proc_status(kid).get("VmHWM", 0) for kid in descendants(pid)) / 1024
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
        result["list_first_server"] = slice_("list_artifacts", 2, args.samples)
        result["list_deep_server"] = slice_("list_artifacts", 2 + args.samples + walk_calls, args.samples)
    else:
        log("warning: no server timings file")
    trivial_ms += await trivial_calls(args, workdir)
    result["trivial_client"] = stats(trivial_ms)
    base = result["trivial_client"]["p50_ms"]
    result["ratio_to_trivial_p50"] = {
        "get": result["get_client"]["p50_ms"] / base, "list_first": result["list_first_client"]["p50_ms"] / base,
        "list_deep": result["list_deep_client"]["p50_ms"] / base,
        "create_seq": result["create"]["sequential_client"]["p50_ms"] / base,
        "create_bulk": result["create"]["bulk_client"]["p50_ms"] / base,
    }
    log(f"N={n} {model}: trivial echo p50 {base:.2f} ms (before and after); ratios " + ", ".join(
        f"{k} {v:.2f}" for k, v in result["ratio_to_trivial_p50"].items()))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def ms_pair(d: dict[str, Any] | None, key: str) -> str:
    return "-" if not d else f"{d[key]:.2f}"


def table(results: list[dict[str, Any]]) -> str:
    head = f"{'metric':<34}" + "".join(
        f"{r['artifacts']:>8,} {(r.get('catalog', 'duckdb')[:2] + ':' + r['model'])[:7]:>7}" for r in results)
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
    row("trivial echo client p50 ms", [ms_pair(r["trivial_client"], "p50_ms") for r in results])
    row("not yet indexed after seq creates", [str(r["create"]["not_yet_indexed_after_sequential"]) for r in results])
    for key, label in (("create_seq", "create seq"), ("create_bulk", "create bulk (8 in flight)"), ("get", "get"),
                       ("list_first", "list first page"), ("list_deep", "list 90% deep")):
        target = RATIO_TARGETS.get(key)
        row(f"{label} / trivial p50" + (f" (<= {target:g})" if target else ""),
            [f"{r['ratio_to_trivial_p50'][key]:.2f}" for r in results])
    row("deep/first p95 (server)", [
        f"{r['list_deep_server']['p95_ms'] / r['list_first_server']['p95_ms']:.2f}"
        if r.get("list_deep_server") and r.get("list_first_server") else "-" for r in results])
    row("deep/first p95 (client)", [
        f"{r['list_deep_client']['p95_ms'] / r['list_first_client']['p95_ms']:.2f}" for r in results])
    row("server peak RSS MB (VmHWM)", [f"{r.get('server_peak_rss_mb', float('nan')):.0f}" for r in results])
    row("its child processes' peak RSS MB", [f"{r.get('child_peak_rss_mb', float('nan')):.0f}" for r in results])
    row("data dir MB", [f"{r['data_dir_mb']:.0f}" for r in results])
    lines = [head, "-" * len(head)]
    lines += [f"{label:<34}" + "".join(f"{v:>14}" for v in values) for label, values in rows]
    return "\n".join(lines)


def postgres_ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per size and model: each operation's p50 on PostgreSQL over its p50 on DuckDB (client and server side)."""
    out = []
    for pg in (r for r in results if r.get("catalog") == "postgresql"):
        duck = next(r for r in results if r.get("catalog") == "duckdb" and r["artifacts"] == pg["artifacts"]
                    and r["model"] == pg["model"])
        ratios: dict[str, float] = {}
        for key, pick in (("create_seq", lambda r, s: r["create"].get(f"sequential_{s}")),
                          ("create_bulk", lambda r, s: r["create"].get(f"bulk_{s}")),
                          ("get", lambda r, s: r.get(f"get_{s}")),
                          ("list_first", lambda r, s: r.get(f"list_first_{s}")),
                          ("list_deep", lambda r, s: r.get(f"list_deep_{s}"))):
            for side in ("client", "server"):
                a, b = pick(pg, side), pick(duck, side)
                if a and b:
                    ratios[f"{key}_{side}"] = a["p50_ms"] / b["p50_ms"]
        ratios["create_per_second_bulk"] = pg["create"]["bulk_per_second"] / duck["create"]["bulk_per_second"]
        out.append({"artifacts": pg["artifacts"], "model": pg["model"], "postgres_over_duckdb_p50": ratios})
        log(f"N={pg['artifacts']} {pg['model']}: PostgreSQL / DuckDB p50 " + ", ".join(
            f"{k} {v:.2f}" for k, v in ratios.items()))
    return out


async def main_async(args: argparse.Namespace) -> None:
    results = []
    catalogs: list[tuple[str, Any]] = [("duckdb", None)]
    stack = contextlib.ExitStack()
    if args.postgres:
        # A throwaway PostgreSQL from the machine's binaries (tests/support_postgres.py), a fresh database per
        # size: each size runs on embedded DuckDB, then on PostgreSQL over TCP on 127.0.0.1.
        sys.path.insert(0, str(REPO))
        from tests.support_postgres import postgres_server

        pg = stack.enter_context(postgres_server())
        catalogs.append(("postgresql", pg))
    with stack:
        for n in args.sizes:
            for model in args.models:
                for catalog, pg in catalogs:
                    args.catalog = pg.new_database() if pg is not None else None
                    log(f"--- N={n} {model} on {catalog}")
                    results.append(await run_size(n, model, args) | {"catalog": catalog})
                    print(table(results[-1:]), file=sys.stderr, flush=True)
    report = {
        "benchmark": "crud", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
        "cpus": os.cpu_count(), "python": platform.python_version(), "mode": args.mode, "models": args.models,
        "content_bytes": 4096, "page": args.page, "samples": args.samples, "env": dict(args.env),
        "results": results, "postgres_over_duckdb": postgres_ratios(results) if args.postgres else [],
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
    parser.add_argument("--models", nargs="+", default=["default"],
                        help="embedding models (ARTIFACT_MCP_EMBEDDING_MODEL), a fresh server per model and size")
    parser.add_argument("--postgres", action="store_true",
                        help="run every size on a throwaway PostgreSQL too, and give PostgreSQL / DuckDB p50 ratios")
    add_server_args(parser)
    args = parser.parse_args()
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
