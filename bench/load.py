"""Load benchmark: concurrent MCP clients over streamable HTTP against `artifact-mcp serve --transport http`
with auth on (a benchmark, not a test).

For each protocol era (`--mode auto`, the default, speaks 2026-07-28; `--modes auto legacy` also measures the
2025-11-25 handshake), on a fresh data directory and fresh servers (or the servers at `--url`, with `--token`):

1. make a token with `artifact-mcp token create` and start `--processes` servers on the data directory (default
   1; with more, the first owns the store and the others forward to it; hash:384 embeddings unless
   `--embedding-model default`); store `--seed` artifacts so reads have something to read from the start;
2. open `--clients` MCP sessions (default 50, spread over the processes), each with its own HTTP connection
   pool and the bearer token;
3. each client calls each operation once (the warm-up: the MCP client fetches the tool list and compiles each
   tool's output-schema validator at its first call; reported, not counted, though the indexing of its creates
   runs on into the timed part); then, counted from here (calls, CPU, run-queue time), for `--seconds`
   (default 60), every client loops over a random mix (default 25% create_artifact of a small text, 35%
   get_artifact of an acknowledged artifact, 25% list_artifacts, 15% query_artifacts), timing each call; a get
   checks it reads back what was written (a mismatch counts as an error);
4. reports throughput (ops/s), p50/p95/p99 per operation and overall, the error count with the first error
   messages, the servers' CPU time, the time they were runnable but waited for a CPU (on a shared machine:
   how much other processes held the cores), peak RSS, and the background indexing still pending at the end;
5. verifies every acknowledged create: get each id (16 in flight, through every process) and compare the
   content; a write that is missing or different is a lost write. Then waits (up to `--drain-seconds`) for
   indexing to finish.

    .venv/bin/python bench/load.py                         # 50 clients, 60 s, 2026-07-28 (mode auto)
    .venv/bin/python bench/load.py --modes auto legacy --clients 50 --seconds 60
    .venv/bin/python bench/load.py --processes 2                           # owner + forwarder
    .venv/bin/python bench/load.py --url http://127.0.0.1:8000/mcp --token amcp_...
    .venv/bin/python bench/load.py --postgres --replicas 1 2 3   # replicas on PostgreSQL next to DuckDB

With `--postgres` (issue 13), a throwaway PostgreSQL server is started from the machine's binaries, and for each
count in `--replicas` the run is made twice in a row: N processes on embedded DuckDB (an owner and forwarders),
then N replicas on a fresh PostgreSQL database (each with its own data directory; blobs in one shared
directory); PostgreSQL's own CPU is reported next to the servers'. Target on the 2-core machine: 2 replicas >=
1.6x the ops/s of one, 0 errors, 0 lost writes.

Targets (issue 4): zero errors, zero lost writes. Progress goes to stderr; a table to stdout; the figures as
JSON to --out (bench/results/load.json).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from common import add_server_args, descendants, free_port, log, pct, proc_status, wait_ready, write_report
from load_clients import OPS, Results, call, index_backlog, open_session, text_for, verify, warm_up, worker

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def child_cpu_seconds(pids: list[int]) -> dict[int, float]:
    return {kid: cpu_seconds(kid) for p in pids for kid in descendants(p)}


def runqueue_wait_seconds(pid: int) -> float:
    """Time the server's threads spent runnable but waiting for a CPU (schedstat of the live threads): on a
    shared machine, how much of the latency is other processes holding the cores."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


class LocalServers:
    """`--processes` x `artifact-mcp serve --transport http` on one fresh data directory (the first owns the
    store, the others forward to it), with one token made by the CLI."""

    def __init__(self, args: argparse.Namespace, label: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"load-bench-{label}-", dir=args.tmp))
        self.data_dir = str(self.workdir / "data")
        self.args = args
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACT_MCP_")}
        self.env.update({"ARTIFACT_MCP_LOG_LEVEL": "WARNING", **dict(args.env)})
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.errlog = (self.workdir / "server.log").open("ab")

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}/mcp" for port in self.ports]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    @property
    def catalog_args(self) -> list[str]:
        """On a PostgreSQL catalog every process is a replica with a data directory of its own; blobs are shared."""
        if not self.args.catalog:
            return []
        return ["--catalog", self.args.catalog, "--blob-url", (self.workdir / "blobs").resolve().as_uri()]

    def cli(self, *argv: str) -> str:
        done = subprocess.run([str(REPO / ".venv/bin/artifact-mcp"), *argv, "--data-dir", self.data_dir,
                               *self.catalog_args],
                              capture_output=True, text=True, env=self.env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"artifact-mcp {' '.join(argv)} failed: {done.stderr}")
        return done.stdout.strip()

    def start(self) -> str:
        token = self.cli("token", "create", "--principal", "load-bench", "--scope", "load/*/*",
                         "--permission", "write", "--default-scope", "load/bench/main")
        for i in range(self.args.processes):  # one after the other: the first to be up owns the store
            port = free_port()
            data_dir = f"{self.data_dir}-replica{i}" if self.args.catalog else self.data_dir
            proc = subprocess.Popen(
                [str(REPO / ".venv/bin/artifact-mcp"), "serve", "--transport", "http", "--port", str(port),
                 "--data-dir", data_dir, "--embedding-model", self.args.embedding_model, *self.catalog_args],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.errlog, env=self.env,
                cwd=self.workdir)
            self.procs.append(proc)
            self.ports.append(port)
            wait_ready(proc, port, self.workdir / "server.log", 120)
        return token

    def stop(self) -> None:
        for proc in reversed(self.procs):  # forwarders first, so no one takes the store over
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.errlog.close()
        if not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def summarize(values: list[float], seconds: float) -> dict[str, float]:
    return {"n": len(values), "per_second": len(values) / seconds, "p50_ms": pct(values, 0.5),
            "p95_ms": pct(values, 0.95), "p99_ms": pct(values, 0.99), "max_ms": max(values, default=0.0)}


async def run_mode(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    servers = None if args.url else LocalServers(args, mode)
    try:
        if servers is not None:
            token, urls, pids = servers.start(), servers.urls, servers.pids
            log(f"{mode}: server pids {pids} on {urls}, data dir {servers.data_dir}")
        else:
            token, urls, pids = args.token, args.url, []
        res = Results()
        rng = random.Random(0)
        async with open_session(urls[0], token, mode) as client:  # seed, so gets have targets from the start
            for i in range(args.seed):
                content = text_for(rng, f"seed {i}")
                out = await call(client, "create_artifact", {"name": f"seed-{i}", "content": content,
                                                             "tags": ["load"]})
                res.written[out["artifact_id"]] = content
                res.written_ids.append(out["artifact_id"])
        start, deadline = anyio.Event(), [0.0]
        warm_ms: list[float] = []
        ready = 0
        mix = [args.mix[op] for op in OPS]

        async def session(n: int) -> None:
            nonlocal ready
            async with open_session(urls[n % len(urls)], token, mode) as client:  # clients spread over processes
                warm_ms.extend(await warm_up(n, client, res))
                ready += 1
                await worker(n, client, res, start, deadline, mix)

        async with anyio.create_task_group() as tg:
            for n in range(args.clients):
                tg.start_soon(session, n)
            while ready < args.clients:
                await anyio.sleep(0.05)
            log(f"{mode}: {args.clients} sessions open and warmed up (each op once: p50 {pct(warm_ms, .5):.0f} ms, "
                f"max {max(warm_ms, default=0):.0f} ms); running {args.seconds} s")
            # Counted from here: opening the sessions and the warm-up calls are not the load.
            db_pids = args.postgres_pids()
            db0 = sum(cpu_seconds(p) for p in db_pids)
            cpu0 = sum(cpu_seconds(p) for p in pids)
            child0 = child_cpu_seconds(pids)
            wait0 = sum(runqueue_wait_seconds(p) for p in pids)
            bench_cpu0 = time.process_time()
            load0 = os.getloadavg()[0]
            t_start = time.perf_counter()
            deadline[0] = t_start + args.seconds
            start.set()
            while time.perf_counter() < deadline[0]:
                await anyio.sleep(min(10.0, max(0.0, deadline[0] - time.perf_counter())))
                done = sum(len(v) for v in res.latencies.values())
                log(f"{mode}: {done} ops, {sum(res.errors.values())} errors, "
                    f"{done / (time.perf_counter() - t_start):.0f} ops/s")
            # the calls in flight at the deadline finish and count
        elapsed = time.perf_counter() - t_start
        every = [ms for op in OPS for ms in res.latencies[op]]
        result: dict[str, Any] = {
            "mode": mode, "clients": args.clients, "processes": len(urls), "seconds": elapsed, "seeded": args.seed,
            "ops": len(every), "ops_per_second": len(every) / elapsed, "overall": summarize(every, elapsed),
            "per_op": {op: summarize(res.latencies[op], elapsed) for op in OPS},
            "errors": sum(res.errors.values()), "errors_per_op": dict(res.errors), "error_samples": res.error_samples,
            "warm_up_ms": summarize(warm_ms, 1.0),
            "bench_cpu_seconds": time.process_time() - bench_cpu0, "load_average_1m": [load0, os.getloadavg()[0]],
        }
        if pids:
            cpu = sum(cpu_seconds(p) for p in pids) - cpu0
            # The index preparation child's CPU counts too (a child started during the run counts from zero).
            child = sum(t - child0.get(kid, 0.0) for kid, t in child_cpu_seconds(pids).items())
            result.update({
                "server_cpu_seconds": cpu, "server_cpu_cores": cpu / elapsed,
                "server_cpu_ms_per_op": cpu * 1000 / max(1, len(every)),
                "child_cpu_seconds": child, "child_cpu_ms_per_op": child * 1000 / max(1, len(every)),
                "server_runqueue_wait_seconds": sum(runqueue_wait_seconds(p) for p in pids) - wait0,
                "server_peak_rss_mb": [proc_status(p).get("VmHWM", 0) / 1024 for p in pids],
            })
        if db_pids:
            db_cpu = sum(cpu_seconds(p) for p in args.postgres_pids()) - db0
            result.update({"catalog": "postgresql", "postgres_cpu_seconds": db_cpu,
                           "postgres_cpu_cores": db_cpu / elapsed,
                           "postgres_cpu_ms_per_op": db_cpu * 1000 / max(1, len(every))})
        log(f"{mode}: verifying {len(res.written)} acknowledged writes")
        result["verify"] = await verify(urls, token, mode, res.written)
        result["index"] = await index_backlog(urls[0], token, mode, args.drain_seconds)
        return result
    finally:
        if servers is not None:
            servers.stop()


def table(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        v = r["verify"]
        lines.append(f"mode {r['mode']}, catalog {r.get('catalog', 'duckdb')}: {r['clients']} clients, "
                     f"{r['processes']} server process(es), "
                     f"{r['seconds']:.1f} s, {r['ops']} ops, {r['ops_per_second']:.0f} ops/s, errors {r['errors']}, "
                     f"lost writes {v['lost']} of {v['checked']} (listed {v['listed_with_tag']})")
        lines.append(f"  {'op':<8}{'n':>8}{'ops/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        for name, s in [*r["per_op"].items(), ("overall", r["overall"])]:
            lines.append(f"  {name:<8}{s['n']:>8}{s['per_second']:>9.1f}{s['p50_ms']:>9.1f}{s['p95_ms']:>9.1f}"
                         f"{s['p99_ms']:>9.1f}{s['max_ms']:>9.1f}")
        w = r["warm_up_ms"]
        lines.append(f"  warm-up (each client each op once, before the clock, not counted): {w['n']} calls, "
                     f"p50 {w['p50_ms']:.0f} ms, max {w['max_ms']:.0f} ms")
        if "server_cpu_cores" in r:
            rss = ", ".join(f"{mb:.0f}" for mb in r["server_peak_rss_mb"])
            lines.append(f"  server CPU {r['server_cpu_cores']:.2f} cores ({r['server_cpu_ms_per_op']:.1f} ms per op), "
                         f"runnable but waiting for a CPU {r['server_runqueue_wait_seconds']:.0f} s, "
                         f"peak RSS {rss} MB")
            lines.append(f"  index preparation child CPU {r['child_cpu_seconds']:.0f} s "
                         f"({r['child_cpu_ms_per_op']:.1f} ms per op)")
        if "postgres_cpu_cores" in r:
            lines.append(f"  PostgreSQL CPU {r['postgres_cpu_cores']:.2f} cores ({r['postgres_cpu_ms_per_op']:.1f} ms "
                         "per op)")
        lines.append(f"  bench process CPU {r['bench_cpu_seconds']:.0f} s; machine load average "
                     f"{r['load_average_1m'][0]:.1f} -> {r['load_average_1m'][1]:.1f}")
        idx = r["index"]
        lines.append(f"  index backlog at end {idx['pending_at_end']}, drained in {idx['drain_seconds']:.1f} s "
                     f"(left {idx['pending_after_drain']})")
        for sample in r["error_samples"]:
            lines.append(f"  error: {sample}")
        for sample in r["verify"]["lost_samples"]:
            lines.append(f"  lost: {sample}")
    return "\n".join(lines)


def parse_mix(text: str) -> dict[str, float]:
    mix = {op: 0.0 for op in OPS}
    for part in text.split(","):
        op, _, weight = part.partition("=")
        if op not in mix:
            raise argparse.ArgumentTypeError(f"unknown operation {op!r}; use {', '.join(OPS)}")
        mix[op] = float(weight)
    return mix


async def main_async(args: argparse.Namespace) -> int:
    args.postgres_pids = list
    if not args.postgres:
        return await _report(args, [await run_mode(args, mode) for mode in args.modes])
    # A throwaway PostgreSQL from the machine's binaries (tests/support_postgres.py), a fresh database per run;
    # each replica count next to embedded DuckDB with the same number of processes (owner + forwarders).
    sys.path.insert(0, str(REPO))
    from tests.support_postgres import postgres_server

    results = []
    with postgres_server() as pg:
        assert pg.proc is not None
        args.postgres_pids = lambda: [pg.proc.pid, *descendants(pg.proc.pid)]  # type: ignore[union-attr]
        for n in args.replicas:
            args.processes = n
            for mode in args.modes:
                args.catalog = None
                log(f"--- DuckDB, {n} process(es)")
                saved, args.postgres_pids = args.postgres_pids, list
                results.append(await run_mode(args, mode) | {"catalog": "duckdb"})
                args.postgres_pids = saved
                args.catalog = pg.new_database()
                log(f"--- PostgreSQL, {n} replica(s)")
                results.append(await run_mode(args, mode))
    return await _report(args, results)


async def _report(args: argparse.Namespace, results: list[dict[str, Any]]) -> int:
    print(table(results))
    report = {
        "benchmark": "load", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
        "cpus": os.cpu_count(), "python": platform.python_version(), "url": args.url,
        "embedding_model": args.embedding_model, "mix": args.mix, "env": dict(args.env), "results": results,
    }
    if args.out:
        write_report(Path(args.out), report)
    return 0 if all(r["errors"] == 0 and r["verify"]["lost"] == 0 for r in results) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_args(parser)
    parser.add_argument("--modes", nargs="+", choices=["auto", "legacy"],
                        help="several eras, one run each (default: --mode): auto = 2026-07-28 (stateless), "
                             "legacy = the 2025-11-25 handshake and sessions")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--mix", type=parse_mix, default=parse_mix("create=25,get=35,list=25,query=15"),
                        help="operation weights (default create=25,get=35,list=25,query=15)")
    parser.add_argument("--seed", type=int, default=200, help="artifacts stored before the clock starts")
    parser.add_argument("--embedding-model", default="hash:384", help="hash:384 (default) or default (MiniLM)")
    parser.add_argument("--drain-seconds", type=float, default=120, help="longest wait for indexing to finish")
    parser.add_argument("--processes", type=int, default=1,
                        help="server processes on the one data directory; clients are spread over them")
    parser.add_argument("--catalog", help="a postgresql:// catalog: every process is a replica on it")
    parser.add_argument("--postgres", action="store_true",
                        help="start a throwaway PostgreSQL and run each --replicas count on it and on DuckDB")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3], help="with --postgres (default 1 2 3)")
    parser.add_argument("--url", nargs="+", help="already running servers' MCP endpoints (then --token is needed)")
    parser.add_argument("--token", default=os.environ.get("ARTIFACT_MCP_TOKEN"),
                        help="bearer token for --url (default $ARTIFACT_MCP_TOKEN)")
    parser.add_argument("--out", default=str(REPO / "bench/results/load.json"))
    args = parser.parse_args()
    if args.url and not args.token:
        parser.error("--url needs --token (or ARTIFACT_MCP_TOKEN)")
    args.modes = args.modes or [args.mode]
    sys.exit(anyio.run(main_async, args))


if __name__ == "__main__":
    main()
