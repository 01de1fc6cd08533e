"""Helpers shared by the benchmarks (run as scripts: `bench/` is on sys.path)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))] if s else float("nan")


def stats(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": pct(values, 0.5), "p95_ms": pct(values, 0.95),
            "mean_ms": statistics.fmean(values) if values else float("nan"), "max_ms": max(values, default=0.0)}


def find_server_pid(data_dir: str) -> int | None:
    """The `artifact-mcp serve` process whose command line names our data directory."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in cmdline]
        if "serve" in args and data_dir in args:
            return int(entry)
    return None


def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])  # kB
    return out


def descendants(pid: int) -> list[int]:
    """The live processes below `pid` (the server's index preparation child)."""
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            out += [kid, *descendants(kid)]
    return out


def thread_times_ms(pid: int) -> tuple[float, float]:
    """(CPU time, time runnable but waiting for a CPU) of a process's live threads, in ms (schedstat): around one
    call, what it cost the server and how much of its latency was other processes holding the cores."""
    cpu = wait = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
            cpu += int(fields[0])
            wait += int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    return cpu / 1e6, wait / 1e6


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def write_report(out: Path, report: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {out}")


def add_server_args(parser: argparse.ArgumentParser) -> None:
    """Options of every benchmark that runs its own `artifact-mcp serve` on temporary data directories."""
    parser.add_argument("--mode", default="auto", choices=["auto", "legacy"], help="MCP protocol era")
    parser.add_argument("--tmp", default=None, help="parent directory for the temporary data directories")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    parser.add_argument("--env", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                        help="extra environment for the server (repeatable)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(proc: subprocess.Popen[bytes], port: int, log_path: Path, timeout: float) -> None:
    """Until the HTTP server on `port` answers /readyz (its store open); exits the benchmark if it dies or stalls."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"server did not become ready within {timeout:.0f} s")


# The baseline of crud.py and startup.py: the smallest MCPServer tool, served the same way by the same interpreter.
TRIVIAL = '''\
from mcp.server import MCPServer

app = MCPServer("trivial")


@app.tool()
def echo(text: str) -> str:
    """Echo the text."""
    return text


app.run()
'''
