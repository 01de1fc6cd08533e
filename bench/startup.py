"""Start-up benchmark: how soon a freshly spawned stdio server answers (a benchmark, not a test).

1. Build a store of `--artifacts` (1,000) documents in-process through the real store pipeline (`open_store`, then
   `create` and `claim_index_jobs` / `prepare_index` / `commit_index`): the BEIR SciFact abstracts when present
   (`--corpus`), else generated prose. Vectors come from `hash:384`; for another model the catalog is relabelled as
   indexed by it (as bench/query.py does), so the server does not re-index: only time is measured here.
2. `--starts` (5) rounds; in each, one start of every server kind, in turn:
   - a trivial `MCPServer` (one tool, `mcp.run()` on stdio), spawned the same way (the same interpreter, a script
     file, the same environment): spawn -> `initialize` answered;
   - `artifact-mcp serve` on the store, per model (`--models`, default `default hash:384`): spawn -> `initialize`
     answered; then `notifications/initialized` and at once a `query_artifacts` (hybrid, top_k 10, with a progress
     token): spawn -> first query answered, and the progress notifications it got while the server was starting;
     then idle RSS: the server's VmRSS once its CPU time (and its children's) has stood still for 1 s (store open,
     model warm), and its children's (the index preparation child, storage/index/child.py) beside it.
   Each figure as p50 and min (on a shared machine the min is the least disturbed start), and the CPU seconds the
   server's main thread had used when `initialize` was answered (the store opens on another thread).
   The client is raw JSON-RPC over the pipes (the 2025-11-25 handshake, as desktop hosts connect), so no client
   library's start-up or validation counts. Before the rounds, one unmeasured start of each kind (page cache,
   bytecode: the servers run with `PYTHONDONTWRITEBYTECODE` unset, as an installed server does).

    .venv/bin/python bench/startup.py                        # ~6 min on a 2-core machine
    .venv/bin/python bench/startup.py --compare ../main/.venv/bin/artifact-mcp   # also another build, same run

Targets (issue 12): spawn -> initialize <= 1.5x the trivial server's; spawn -> first query <= 1.8 s; idle RSS
<= 200 MiB. Progress goes to stderr; a table to stdout; full figures (and settings) to --out as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import TRIVIAL, descendants, log, pct, proc_status, write_report

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                         "clientInfo": {"name": "startup-bench", "version": "0"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
WORDS = ["artifact", "agent", "report", "summary", "memory", "vector", "index", "chunk", "query", "cursor", "latency",
         "durable", "store", "transcript", "result", "thread", "namespace", "version", "embedding", "retrieval",
         "context", "model", "server", "client", "catalog", "hybrid"]


# --- 1. the store -----------------------------------------------------------------------------------


def load_docs(corpus: Path, n: int) -> list[tuple[str, str]]:
    docs: list[tuple[str, str]] = []
    path = corpus / "corpus.jsonl"
    if path.exists():
        with path.open() as f:
            for line in f:
                d = json.loads(line)
                title, text = (d.get("title") or "").strip(), (d.get("text") or "").strip()
                if text:
                    docs.append((title or f"doc {d['_id']}", text))
                if len(docs) == n:
                    return docs
    rng = random.Random(n)
    while len(docs) < n:  # generated prose when the corpus is missing (or short)
        i = len(docs)
        docs.append((f"note {i}", " ".join(rng.choice(WORDS) for _ in range(150)) + "."))
    return docs


def build_store(data_dir: Path, docs: list[tuple[str, str]], model: str) -> dict[str, Any]:
    from artifact_mcp.storage.config import IndexConfig, StoreConfig
    from artifact_mcp.storage.index.embeddings import model_id_for
    from artifact_mcp.storage.models import NewArtifact, Scope
    from artifact_mcp.storage.store import open_store

    t0 = time.perf_counter()
    data_dir.mkdir(parents=True)
    cfg = StoreConfig(catalog_path=str(data_dir / "catalog.duckdb"), blob_url=(data_dir / "blobs").resolve().as_uri(),
                      blob_fsync=False, index=IndexConfig(embedding_model="hash:384"))
    store = open_store(cfg)
    scope = Scope(org_id="default", workspace_id="default", namespace_id="default")
    chunks = 0
    for start in range(0, len(docs), 100):
        for k, (title, text) in enumerate(docs[start:start + 100], start=start):
            store.create(scope, NewArtifact(name=title, content=text, artifact_type="document",
                                            thread_id=f"thread-{k % 50}", tags=[f"topic-{k % 20}"]))
        while tasks := store.claim_index_jobs(100):
            prepared = store.prepare_index(tasks)
            store.commit_index(tasks, prepared)
            chunks += sum(len(p.chunks) for p in prepared)
    model_id = model_id_for(model)
    if model_id != model_id_for("hash:384"):
        with store.db.transaction():  # relabel (same dimension): the server keeps the index instead of rebuilding
            store.db.settings.set("embedding_model_id", model_id)
            store.con.execute("UPDATE artifacts SET embedding_model_id = ? WHERE embedding_model_id IS NOT NULL",
                              [model_id])
    store.con.execute("CHECKPOINT")
    store.close()
    return {"artifacts": len(docs), "chunks": chunks, "seconds": round(time.perf_counter() - t0, 1),
            "vectors": "hash:384" + ("" if model_id == model_id_for("hash:384") else f" relabelled as {model_id}")}


# --- 2. starts ---------------------------------------------------------------------------------------


class Server:
    """One spawned stdio server and a raw JSON-RPC line reader on its stdout."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, stderr: Path) -> None:
        self.t0 = time.perf_counter()
        self.stderr = stderr
        with stderr.open("ab") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env,
                                         cwd=cwd)
        self._buf = b""
        self._sel = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._sel.register(self.proc.stdout, selectors.EVENT_READ)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def receive(self, deadline: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.perf_counter()
            if left <= 0 or not self._sel.select(left):
                raise TimeoutError("no answer from the server in time")
            data = os.read(fd, 1 << 16)
            if not data:
                self.proc.wait(timeout=10)
                tail = self.stderr.read_text(errors="replace")[-3000:]
                raise EOFError(f"the server exited (status {self.proc.returncode}):\n{tail}")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def answer(self, rid: int, deadline: float) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
        """The response to `rid`, the notifications before it, and seconds since spawn when it came."""
        notes: list[dict[str, Any]] = []
        while True:
            msg = self.receive(deadline)
            if msg.get("id") == rid and "method" not in msg:
                if "error" in msg:
                    raise RuntimeError(f"request {rid} failed: {msg['error']}")
                return msg, notes, time.perf_counter() - self.t0
            notes.append(msg)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # EOF: the server shuts down cleanly (and hands the store over)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._sel.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def main_thread_cpu_s(pid: int) -> float:
    """CPU seconds the process's main thread has used (not the store opening on another thread): unlike wall time,
    barely moved by other work on a shared machine."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_rss_mb(pid: int, quiet_s: float = 1.0, limit_s: float = 60.0) -> tuple[float, float]:
    """VmRSS of the process and of its children (the index preparation child) once they have used no CPU for
    `quiet_s` (their background start-up done)."""

    def ticks() -> int:
        total = 0
        for p in [pid, *descendants(pid)]:
            with contextlib.suppress(OSError):
                total += cpu_ticks(p)
        return total

    end = time.perf_counter() + limit_s
    last, since = ticks(), time.perf_counter()
    while time.perf_counter() < end:
        time.sleep(0.1)
        now = ticks()
        if now != last:
            last, since = now, time.perf_counter()
        elif time.perf_counter() - since >= quiet_s:
            break
    children = 0.0
    for kid in descendants(pid):
        with contextlib.suppress(OSError):
            children += proc_status(kid).get("VmRSS", 0) / 1024
    return proc_status(pid).get("VmRSS", 0) / 1024, children


def start_trivial(script: Path, env: dict[str, str], workdir: Path) -> dict[str, Any]:
    srv = Server([sys.executable, str(script)], env, workdir, workdir / "trivial-stderr.log")
    try:
        srv.send(INITIALIZE)
        _, _, init_s = srv.answer(1, srv.t0 + 60)
        return {"initialize_s": init_s, "initialize_cpu_s": main_thread_cpu_s(srv.proc.pid),
                "rss_mb": proc_status(srv.proc.pid).get("VmRSS", 0) / 1024}
    finally:
        srv.stop()


def start_server(command: str, model: str, data_dir: Path, query: str, env: dict[str, str],
                 workdir: Path) -> dict[str, Any]:
    env = {**env, "ARTIFACT_MCP_EMBEDDING_MODEL": model}
    srv = Server([command, "serve", "--data-dir", str(data_dir)], env, workdir, workdir / "server-stderr.log")
    try:
        srv.send(INITIALIZE)
        _, _, init_s = srv.answer(1, srv.t0 + 120)
        init_cpu = main_thread_cpu_s(srv.proc.pid)
        rss_init = proc_status(srv.proc.pid).get("VmRSS", 0) / 1024
        srv.send(INITIALIZED)
        srv.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                  "params": {"name": "query_artifacts", "arguments": {"query": query, "top_k": 10},
                             "_meta": {"progressToken": "first-query"}}})
        reply, notes, query_s = srv.answer(2, srv.t0 + 300)
        result = reply["result"]
        if result.get("isError"):
            raise RuntimeError(f"query_artifacts failed: {result['content'][0]['text']}")
        hits = len(result["structuredContent"]["results"])
        progress = [n["params"].get("message") for n in notes if n.get("method") == "notifications/progress"]
        idle, children = idle_rss_mb(srv.proc.pid)
        return {"initialize_s": init_s, "initialize_cpu_s": init_cpu, "first_query_s": query_s, "hits": hits,
                "progress": progress,
                "rss_at_initialize_mb": rss_init, "idle_rss_mb": idle, "idle_children_rss_mb": children}
    finally:
        srv.stop()


def summary(starts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"starts": starts}
    for key in ("initialize_s", "initialize_cpu_s", "first_query_s", "rss_mb", "rss_at_initialize_mb",
                "idle_rss_mb", "idle_children_rss_mb"):
        values = [s[key] for s in starts if key in s]
        if values:
            name = key.removesuffix("_s").removesuffix("_mb")
            out[f"{name}_p50"] = pct(values, 0.5)
            out[f"{name}_min"] = min(values)
    return out


def table(report: dict[str, Any]) -> str:
    trivial = report["trivial"]
    models = report["models"]
    head = f"{'':<34}{'trivial MCPServer':>18}" + "".join(f"{m:>20}" for m in models)
    lines = [head, "-" * len(head)]

    def row(label: str, triv: str, values: list[str]) -> None:
        lines.append(f"{label:<34}{triv:>18}" + "".join(f"{v:>20}" for v in values))

    row("spawn -> initialize p50 s", f"{trivial['initialize_p50']:.3f}",
        [f"{m['initialize_p50']:.3f}" for m in models.values()])
    row("  ratio to the trivial server", "1.00",
        [f"{m['initialize_p50'] / trivial['initialize_p50']:.2f}" for m in models.values()])
    row("spawn -> initialize min s", f"{trivial['initialize_min']:.3f}",
        [f"{m['initialize_min']:.3f}" for m in models.values()])
    row("  ratio to the trivial server", "1.00",
        [f"{m['initialize_min'] / trivial['initialize_min']:.2f}" for m in models.values()])
    row("main thread CPU s at initialize p50", f"{trivial['initialize_cpu_p50']:.2f}",
        [f"{m['initialize_cpu_p50']:.2f}" for m in models.values()])
    row("  ratio to the trivial server", "1.00",
        [f"{m['initialize_cpu_p50'] / trivial['initialize_cpu_p50']:.2f}" for m in models.values()])
    row("spawn -> first query p50 s", "-", [f"{m['first_query_p50']:.3f}" for m in models.values()])
    row("spawn -> first query min s", "-", [f"{m['first_query_min']:.3f}" for m in models.values()])
    row("  progress notes (median)", "-",
        [str(sorted(len(s["progress"]) for s in m["starts"])[len(m["starts"]) // 2]) for m in models.values()])
    row("RSS at initialize p50 MiB", f"{trivial['rss_p50']:.0f}",
        [f"{m['rss_at_initialize_p50']:.0f}" for m in models.values()])
    row("idle RSS p50 MiB", "-", [f"{m['idle_rss_p50']:.0f}" for m in models.values()])
    row("  + its children (index child)", "-", [f"{m.get('idle_children_rss_p50', 0):.0f}" for m in models.values()])
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["default", "hash:384"])
    parser.add_argument("--starts", type=int, default=5, help="measured starts of each server kind")
    parser.add_argument("--artifacts", type=int, default=1000, help="documents in the store the queries search")
    parser.add_argument("--corpus", default=str(REPO.parent / "shared/data/beir/scifact"),
                        help="a BEIR folder (corpus.jsonl); generated prose when missing")
    parser.add_argument("--command", default=str(REPO / ".venv/bin/artifact-mcp"), help="the server to start")
    parser.add_argument("--compare", default=None, metavar="COMMAND",
                        help="another build's artifact-mcp, started in the same rounds (e.g. before a change)")
    parser.add_argument("--out", default=str(REPO / "bench/results/startup.json"))
    parser.add_argument("--tmp", default=None, help="parent directory for the temporary data directories")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="startup-bench-", dir=args.tmp))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACT_MCP_") and k != "PYTHONDONTWRITEBYTECODE"}
    env["ARTIFACT_MCP_LOG_LEVEL"] = "WARNING"
    script = workdir / "trivial_server.py"
    script.write_text(TRIVIAL)
    docs = load_docs(Path(args.corpus), args.artifacts)
    query = docs[len(docs) // 2][0]  # a title from the store: the answer has hits
    stores: dict[str, Path] = {}
    builds: dict[str, Any] = {}
    for model in args.models:
        stores[model] = workdir / f"data-{model.replace(':', '-')}"
        builds[model] = build_store(stores[model], docs, model)
        log(f"built {model} store: {builds[model]}")
    try:
        # (label, command, model) of every artifact-mcp start in a round
        kinds = [(model, args.command, model) for model in args.models]
        if args.compare:
            kinds += [(f"{model} (compare)", args.compare, model) for model in args.models]
        log("unmeasured starts (page cache, bytecode)")
        start_trivial(script, env, workdir)
        for _, command, model in kinds:
            start_server(command, model, stores[model], query, env, workdir)
        trivial: list[dict[str, Any]] = []
        per_model: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in kinds}
        for i in range(args.starts):
            trivial.append(start_trivial(script, env, workdir))
            for label, command, model in kinds:
                per_model[label].append(start_server(command, model, stores[model], query, env, workdir))
            log(f"round {i + 1}/{args.starts}: trivial {trivial[-1]['initialize_s']:.3f} s; " + "; ".join(
                f"{m} initialize {r[-1]['initialize_s']:.3f} s, first query {r[-1]['first_query_s']:.3f} s, "
                f"idle {r[-1]['idle_rss_mb']:.0f} MiB" for m, r in per_model.items()))
        report = {
            "benchmark": "startup", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg(),
            "command": args.command, "compare": args.compare, "query": query, "stores": builds,
            "trivial": summary(trivial), "models": {m: summary(r) for m, r in per_model.items()},
        }
        print(table(report))
        write_report(Path(args.out), report)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
