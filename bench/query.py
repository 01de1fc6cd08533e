"""Query latency of `query_artifacts` through a real MCP session over stdio (a benchmark, not a test).

For each size N (default 10,000 and 100,000 chunks; 1,000,000 works too, but takes long), in a fresh
temporary data directory:

1. Build the catalog IN-PROCESS through the real store pipeline (`open_store` -> `ArtifactStore.create`
   -> `claim_index_jobs` / `prepare_index` / `commit_index`, i.e. real chunking, real BM25 postings, real
   chunk rows), with real text: the BEIR SciFact abstracts (name = title, content = text), cycled with a
   " (copy k)" suffix on the name until the catalog holds N chunks. Most artifacts are in the default
   scope (default/default/default, which the queries search); `--other-fraction` of them go to other
   namespaces, and they carry a few threads and tags, so filters have something to filter out.

   To build fast, the vectors are made with the built-in `hash:384` embedding, NOT the real model: result
   quality is meaningless here, only latency is measured. The dimension (384) is the default model's
   (all-MiniLM-L6-v2), and the cost of a search does not depend on the vector values. After the build the
   catalog is relabelled as indexed by the default model (setting `embedding_model_id` and every
   artifact's `embedding_model_id`), so the server does not re-index it.
2. Start `artifact-mcp serve --data-dir DIR` over stdio with the DEFAULT embedding model (the query
   embedding is computed by the real all-MiniLM-L6-v2 in the server, exactly as in production) and
   ARTIFACT_MCP_TIMINGS_FILE; warm up (the first semantic query loads the model); then `--samples` SciFact
   queries in each mode (hybrid, semantic, keyword; default top_k=10 and max_context_tokens=2000), one
   call at a time, the three modes interleaved query by query (rotating their order).
3. Optionally (`--breakdown-samples`, default 100), after the server has exited: open the same store in
   this process and time the parts of a query separately (query embedding by the default model, the
   dense SQL scan, the BM25 SQL query), to show which one the time goes to.

Latencies are reported twice: "client" is the round trip seen by the MCP client (JSON-RPC over stdio,
serialization, the client's validation of the result); "server" is the tool handler's duration inside the
server (ARTIFACT_MCP_TIMINGS_FILE middleware, server/timings.py). Targets: server p50 <= 50 ms and
p95 <= 100 ms at 100,000 chunks, growing sub-linearly with N.

    .venv/bin/python bench/query.py --sizes 10000 100000 --out bench/results/query.json

Progress goes to stderr; a table to stdout; full figures (and settings) to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import anyio
from common import add_server_args, dir_size, find_server_pid, log, proc_status, stats, write_report
from mcp import Client, StdioServerParameters

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODES = ("hybrid", "semantic", "keyword")
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
BUILD_BATCH = 64
OTHER_NAMESPACES = ("ns-1", "ns-2", "ns-3")



def _done(value: Any) -> Future[Any]:
    """A finished future: `_retrieve` takes the query vector as one (the store computes it concurrently)."""
    fut: Future[Any] = Future()
    fut.set_result(value)
    return fut













SOURCE_DIRS = ("storage", "server", "tools")


def source_fingerprint() -> dict[str, Any]:
    """What code the server runs: git HEAD, the modified files, and a hash of the server's sources as they are
    on disk (others may edit them during a long run: the server started for each size loads them afresh)."""
    import hashlib
    import subprocess

    digest = hashlib.sha256()
    files = [*sorted(f for d in SOURCE_DIRS for f in (REPO / d).rglob("*.py")), REPO / "pyproject.toml"]
    for f in files:
        digest.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())

    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    return {"git_head": git("rev-parse", "HEAD"), "modified": git("status", "--porcelain", *SOURCE_DIRS).splitlines(),
            "sha256": digest.hexdigest()}


def load_corpus(root: Path) -> list[tuple[str, str]]:
    docs = []
    with open(root / "corpus.jsonl") as f:
        for line in f:
            d = json.loads(line)
            title, text = (d.get("title") or "").strip(), (d.get("text") or "").strip()
            if text:
                docs.append((title or f"doc {d['_id']}", text))
    return docs


def load_queries(root: Path) -> list[str]:
    with open(root / "queries.jsonl") as f:
        return [t for t in (json.loads(line)["text"].strip() for line in f) if t]


# --- 1. build ------------------------------------------------------------------------------------


def build_catalog(n_chunks: int, data_dir: Path, docs: list[tuple[str, str]], args: argparse.Namespace
                  ) -> dict[str, Any]:
    """Create and index artifacts in-process until the catalog holds >= n_chunks chunks."""
    from artifact_mcp.storage.index.pipeline import IndexConfig
    from artifact_mcp.storage.models import NewArtifact, Scope
    from artifact_mcp.storage.ownership.client import StoreConfig, open_store

    rng = random.Random(n_chunks)
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg = StoreConfig(catalog_path=str(data_dir / "catalog.duckdb"), blob_url=(data_dir / "blobs").resolve().as_uri(),
                      memory_limit=args.build_memory_limit, blob_fsync=False,
                      index=IndexConfig(embedding_model="hash:384"))
    store = open_store(cfg)
    default = Scope(org_id="default", workspace_id="default", namespace_id="default")
    others = [Scope(org_id="default", workspace_id="default", namespace_id=ns) for ns in OTHER_NAMESPACES]
    chunks = default_chunks = artifacts = default_artifacts = 0
    create_s = index_s = 0.0
    next_report = 0.1
    t0 = time.perf_counter()
    k = 0
    while chunks < n_chunks:
        # Create a batch, then index it: the catalog grows until it holds N chunks (overshoot < one batch).
        t = time.perf_counter()
        batch_default = 0
        for _ in range(BUILD_BATCH):
            title, text = docs[k % len(docs)]
            copy = k // len(docs)
            in_default = rng.random() >= args.other_fraction
            scope = default if in_default else rng.choice(others)
            store.create(scope, NewArtifact(
                name=f"{title} (copy {copy})" if copy else title, content=text, artifact_type="document",
                thread_id=f"thread-{k % 50}", tags=[f"topic-{k % 20}"],
            ))
            batch_default += in_default
            k += 1
        create_s += time.perf_counter() - t
        artifacts += BUILD_BATCH
        default_artifacts += batch_default
        t = time.perf_counter()
        while tasks := store.claim_index_jobs(BUILD_BATCH):
            prepared = store.prepare_index(tasks)
            store.commit_index(tasks, prepared)
            for task, prep in zip(tasks, prepared, strict=True):
                if prep.error is not None:
                    raise RuntimeError(f"indexing {task.row.artifact_id} failed: {prep.error}")
                chunks += len(prep.chunks)
                if task.row.namespace_id == "default":
                    default_chunks += len(prep.chunks)
        index_s += time.perf_counter() - t
        while chunks >= next_report * n_chunks and next_report <= 1.0:
            elapsed = time.perf_counter() - t0
            log(f"N={n_chunks}: built {chunks:,} chunks / {artifacts:,} artifacts ({chunks / elapsed:.0f} chunks/s)")
            next_report = round(next_report + 0.1, 1)
    con = store.con
    counted = con.execute("SELECT count(*) FROM chunks").fetchone()[0]  # type: ignore[index]
    assert counted == chunks, (counted, chunks)
    not_indexed = con.execute("SELECT count(*) FROM artifacts WHERE is_latest AND NOT is_indexed").fetchone()[0]  # type: ignore[index]
    assert not_indexed == 0, not_indexed
    # Relabel: the server runs the default model and must not re-index (same dimension, see the docstring).
    with store.db.transaction():
        store.db.settings.set("embedding_model_id", DEFAULT_MODEL_ID)
        con.execute("UPDATE artifacts SET embedding_model_id = ? WHERE embedding_model_id IS NOT NULL",
                    [DEFAULT_MODEL_ID])
    con.execute("CHECKPOINT")
    store.close()
    total_s = time.perf_counter() - t0
    return {
        "chunks": chunks, "artifacts": artifacts, "default_scope_chunks": default_chunks,
        "default_scope_artifacts": default_artifacts, "seconds": total_s, "create_seconds": create_s,
        "index_seconds": index_s, "chunks_per_second": chunks / total_s,
        "artifacts_per_second": artifacts / total_s, "embedding": "hash:384 (relabelled as " + DEFAULT_MODEL_ID + ")",
    }


# --- 2. queries through MCP ----------------------------------------------------------------------


async def call(client: Client, args: dict[str, Any]) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    result = await client.call_tool("query_artifacts", args)
    ms = (time.perf_counter() - t0) * 1000
    if result.is_error or result.structured_content is None:
        text = result.content[0].text if result.content else result  # type: ignore[union-attr]
        raise RuntimeError(f"query_artifacts failed: {text}")
    return result.structured_content, ms


async def run_queries(n: int, data_dir: Path, workdir: Path, queries: list[str], args: argparse.Namespace
                      ) -> dict[str, Any]:
    timings_file = workdir / "timings.json"
    env = {k: v for k, v in os.environ.items() if k != "ARTIFACT_MCP_EMBEDDING_MODEL"}
    env.update({"ARTIFACT_MCP_TIMINGS_FILE": str(timings_file), "ARTIFACT_MCP_LOG_LEVEL": "WARNING"})
    for key, value in args.env:
        env[key] = value
    params = StdioServerParameters(command=str(REPO / ".venv/bin/artifact-mcp"),
                                   args=["serve", "--data-dir", str(data_dir)], env=env, cwd=str(workdir))
    rng = random.Random(n)
    sample = rng.sample(queries, min(args.samples, len(queries)))
    while len(sample) < args.samples:  # more samples than queries: repeat some
        sample.append(rng.choice(queries))
    chosen = set(sample)
    warm = [q for q in queries if q not in chosen][: args.warmup] or queries[: args.warmup]
    plan: list[tuple[str, str]] = []  # (mode, query) in call order
    for i, q in enumerate(sample):
        for j in range(len(MODES)):
            plan.append((MODES[(i + j) % len(MODES)], q))
    base = {"top_k": args.top_k, "max_context_tokens": args.max_context_tokens}
    result: dict[str, Any] = {}
    client_ms: dict[str, list[float]] = {m: [] for m in MODES}
    hits: dict[str, list[int]] = {m: [] for m in MODES}
    async with Client(params, mode=args.mode, read_timeout_seconds=300) as client:
        pid = find_server_pid(str(data_dir))
        log(f"N={n}: server pid {pid}; warming up ({args.warmup} queries per mode)")
        t = time.perf_counter()
        await call(client, {**base, "query": warm[0], "mode": "semantic"})  # loads the model
        result["first_query_seconds"] = time.perf_counter() - t
        warm_calls = 1
        for q in warm:
            for mode in MODES:
                await call(client, {**base, "query": q, "mode": mode})
                warm_calls += 1
        log(f"N={n}: first query (model load) {result['first_query_seconds']:.1f}s; timing {len(plan)} queries")
        t_start = time.perf_counter()
        for i, (mode, q) in enumerate(plan):
            out, ms = await call(client, {**base, "query": q, "mode": mode})
            client_ms[mode].append(ms)
            hits[mode].append(len(out["results"]))
            if (i + 1) % max(1, len(plan) // 5) == 0:
                log(f"N={n}: {i + 1}/{len(plan)} queries ({time.perf_counter() - t_start:.0f}s)")
        if pid is not None:
            st = proc_status(pid)
            result["server_peak_rss_mb"] = st.get("VmHWM", 0) / 1024
            result["server_rss_mb"] = st.get("VmRSS", 0) / 1024
    # Client closed: the server wrote its timings when its lifespan ended.
    for _ in range(300):
        if timings_file.exists():
            break
        await anyio.sleep(0.1)
    server_ms: dict[str, list[float]] | None = None
    if timings_file.exists():
        samples = json.loads(timings_file.read_text()).get("query_artifacts", {}).get("samples_ms", [])
        if len(samples) != warm_calls + len(plan):
            log(f"warning: server recorded {len(samples)} query_artifacts calls, expected {warm_calls + len(plan)}")
        else:
            server_ms = {m: [] for m in MODES}
            for (mode, _), ms in zip(plan, samples[warm_calls:], strict=True):
                server_ms[mode].append(ms)
    else:
        log("warning: no server timings file")
    result["modes"] = {
        m: {"client": stats(client_ms[m]), "server": stats(server_ms[m]) if server_ms else None,
            "mean_results": statistics.fmean(hits[m]) if hits[m] else 0.0}
        for m in MODES
    }
    result["warmup_calls"] = warm_calls
    return result


# --- 3. in-process breakdown ---------------------------------------------------------------------


def breakdown(data_dir: Path, queries: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Time the parts of a query on the same catalog, in this process, with the server's settings.

    Reaches into the store's internals (the search path changes often): a part that no longer exists is
    skipped with a warning rather than failing the benchmark."""
    from artifact_mcp.storage.clock import utcnow
    from artifact_mcp.storage.index import lexical
    from artifact_mcp.storage.index.pipeline import IndexConfig
    from artifact_mcp.storage.models import QueryRequest, Scope
    from artifact_mcp.storage.ownership.client import StoreConfig, open_store
    from artifact_mcp.storage.repositories.duckdb import filters as sqlfilters
    from artifact_mcp.storage.services.recall import query_filters

    cfg = StoreConfig(catalog_path=str(data_dir / "catalog.duckdb"), blob_url=(data_dir / "blobs").resolve().as_uri(),
                      memory_limit="2GB", threads=1, index=IndexConfig())  # the server's defaults
    store = open_store(cfg)
    try:
        scope = Scope(org_id="default", workspace_id="default", namespace_id="default")
        rng = random.Random(len(queries))
        sample = [rng.choice(queries) for _ in range(args.breakdown_samples)]
        store.indexer.embed_query("warm up")  # loads the model (in this thread)
        store.query(scope, QueryRequest(query="warm up"))  # loads the in-memory search mirror, if any
        depth = max(store.indexer.config.candidates, 5 * args.top_k)
        parts: dict[str, list[float]] = {}
        broken: dict[str, str] = {}

        def part(name: str, fn: Any, *fn_args: Any) -> Any:
            if name in broken:
                return None
            t = time.perf_counter()
            try:
                out = fn(*fn_args)
            except Exception as exc:  # an internal that moved: skip this part from now on
                broken[name] = f"{type(exc).__name__}: {exc}"
                log(f"breakdown: skipping {name}: {broken[name]}")
                return None
            parts.setdefault(name, []).append((time.perf_counter() - t) * 1000)
            return out

        def loop() -> None:
            for q in sample:
                req = QueryRequest(query=q, top_k=args.top_k, max_context_tokens=args.max_context_tokens)
                filters = query_filters(scope, req, utcnow())
                where, params = sqlfilters.to_sql(filters)
                vector = part("embed_query", store.indexer.embed_query, q)
                terms = part("query_terms", lambda q=q: lexical.query_terms(q))
                seqs = part("eligible_sql", lambda w=where, p=params: store.con.execute(
                    f"SELECT seq FROM chunks WHERE {w}", p).fetchnumpy()["seq"])
                if seqs is not None:
                    el = part("mirror_group", lambda s=seqs: store.cache.eligible(s))
                    if el is not None and vector is not None:
                        part("mirror_dense", lambda e=el, v=vector: store.cache.dense(v, e))
                    if el is not None and terms is not None:
                        part("mirror_bm25", lambda e=el, t=terms: store.cache.bm25(
                            t, e, store.indexer.config.bm25_k1, store.indexer.config.bm25_b))
                if vector is not None and terms is not None and "retrieve_hybrid" not in broken:
                    for mode in MODES:
                        got = part(f"retrieve_{mode}", lambda m=mode, v=vector, t=terms, f=filters:
                                   store._recall._retrieve(m, _done(v) if m != "keyword" else None, t, f, depth))
                        if mode == "hybrid" and got is not None:
                            # What query() does with the top_k: read their catalog rows and best chunks.
                            ranked, artifact_of, seq_of = got
                            top = ranked[: args.top_k]
                            ids = [artifact_of(x.segment) for x in top]
                            hit_seqs = [seq_of(x.best_row) for x in top]
                            if ids:
                                part("hits_catalog_rows", lambda i=ids: store.db.artifacts.get_many(i, utcnow()))
                            if hit_seqs:
                                part("hits_chunks_sql", lambda h=hit_seqs: store.con.execute(
                                    "SELECT seq, artifact_id, chunk_index, start_char, end_char, text, collection "
                                    "FROM chunks WHERE list_contains(?, seq)", [h]).fetchall())
                for mode in MODES:
                    part(f"store_query_{mode}", lambda m=mode, r=req: store.query(
                        scope, r.model_copy(update={"mode": m})))

        # Not in the thread that loaded the model: on this busy 2-core machine, torch's intra-op pool (2 threads)
        # made every forward pass in the thread that first ran torch ~25x slower (~500 ms instead of ~20 ms),
        # which the server's own query figures did not show. A fresh thread times the model as the server sees it.
        def guarded() -> None:
            try:
                loop()
            except Exception as exc:
                broken["loop"] = f"{type(exc).__name__}: {exc}"
                log(f"breakdown stopped early: {broken['loop']}")

        worker = threading.Thread(target=guarded, name="breakdown")
        worker.start()
        worker.join()
        out: dict[str, Any] = {k: stats(v) for k, v in parts.items()}
        if broken:
            out["skipped"] = broken
        return out
    finally:
        store.close()


# --- driver --------------------------------------------------------------------------------------


async def run_size(n: int, docs: list[tuple[str, str]], queries: list[str], args: argparse.Namespace
                   ) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"query-bench-{n}-", dir=args.tmp))
    data_dir = workdir / "data"
    try:
        log(f"N={n}: building the catalog in {data_dir}")
        build = await anyio.to_thread.run_sync(build_catalog, n, data_dir, docs, args)
        log(f"N={n}: built {build['chunks']:,} chunks ({build['artifacts']:,} artifacts) in {build['seconds']:.1f}s "
            f"= {build['chunks_per_second']:.0f} chunks/s with the hash embedding "
            f"(create {build['create_seconds']:.1f}s, index {build['index_seconds']:.1f}s)")
        result: dict[str, Any] = {"target_chunks": n, "chunks": build["chunks"], "build": build,
                                  "data_dir_mb": dir_size(data_dir) / 2**20}
        source = source_fingerprint()
        if source["sha256"] != args.source["sha256"]:
            log(f"WARNING: the server's sources changed since this run started (git {source['git_head'][:8]}): the "
                "catalog was built by the code loaded at the start, the server runs the new code")
        result["source"] = source
        result.update(await run_queries(n, data_dir, workdir, queries, args))
        if args.breakdown_samples:
            log(f"N={n}: in-process breakdown ({args.breakdown_samples} queries)")
            result["breakdown"] = await anyio.to_thread.run_sync(breakdown, data_dir, queries, args)
        return result
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def fmt(d: dict[str, Any] | None, key: str) -> str:
    return "-" if not d else f"{d[key]:.1f}"


def table(results: list[dict[str, Any]]) -> str:
    head = (f"{'chunks':>10} {'mode':<9} {'client p50':>11} {'client p95':>11} {'server p50':>11} "
            f"{'server p95':>11} {'hits':>5}")
    lines = [head, "-" * len(head)]
    for r in results:
        for m in MODES:
            d = r["modes"][m]
            lines.append(f"{r['chunks']:>10,} {m:<9} {fmt(d['client'], 'p50_ms'):>11} {fmt(d['client'], 'p95_ms'):>11} "
                         f"{fmt(d['server'], 'p50_ms'):>11} {fmt(d['server'], 'p95_ms'):>11} {d['mean_results']:>5.1f}")
    lines.append("")
    lines.append(f"{'chunks':>10} {'build s':>8} {'chunks/s':>9} {'artifacts':>10} {'data MB':>8} {'peak RSS MB':>12} "
                 f"{'1st query s':>12}")
    for r in results:
        b = r["build"]
        lines.append(f"{r['chunks']:>10,} {b['seconds']:>8.1f} {b['chunks_per_second']:>9.0f} {b['artifacts']:>10,} "
                     f"{r['data_dir_mb']:>8.0f} {r.get('server_peak_rss_mb', float('nan')):>12.0f} "
                     f"{r['first_query_seconds']:>12.1f}")
    if any("breakdown" in r for r in results):
        lines.append("")
        lines.append("in-process breakdown, ms p50/p95 (embed_query = the default model; store_query_* = the whole"
                     " ArtifactStore.query, embedding included):")
        for r in results:
            for k, v in r.get("breakdown", {}).items():
                if k != "skipped":
                    lines.append(f"{r['chunks']:>10,}  {k:<22} {v['p50_ms']:>8.2f} {v['p95_ms']:>8.2f}")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> None:
    root = Path(args.dataset)
    docs = load_corpus(root)
    queries = load_queries(root)
    log(f"{len(docs)} documents, {len(queries)} queries from {root}")
    args.source = source_fingerprint()
    log(f"sources: git {args.source['git_head'][:8]}, {len(args.source['modified'])} modified files")
    results = []
    for n in args.sizes:
        results.append(await run_size(n, docs, queries, args))
        print(table(results[-1:]), file=sys.stderr, flush=True)
    report = {
        "benchmark": "query", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
        "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(), "python": platform.python_version(),
        "mode": args.mode, "dataset": str(root), "samples": args.samples, "warmup": args.warmup, "top_k": args.top_k,
        "max_context_tokens": args.max_context_tokens, "other_fraction": args.other_fraction,
        "breakdown_samples": args.breakdown_samples, "env": dict(args.env), "source_at_start": args.source,
        "source_changed_during_run": any(r["source"]["sha256"] != args.source["sha256"] for r in results)
        or source_fingerprint()["sha256"] != args.source["sha256"],
        "targets": {"server_p50_ms_at_100k": 50, "server_p95_ms_at_100k": 100},
        "results": results,
    }
    print(table(results))
    if args.out:
        write_report(Path(args.out), report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="catalog sizes in chunks")
    parser.add_argument("--dataset", default="/work/shared/data/beir/scifact",
                        help="BEIR-format directory (corpus.jsonl, queries.jsonl)")
    parser.add_argument("--out", default=str(REPO / "bench/results/query.json"))
    parser.add_argument("--samples", type=int, default=300, help="timed queries per mode")
    parser.add_argument("--warmup", type=int, default=5, help="untimed queries per mode first")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--max-context-tokens", type=int, default=2000)
    parser.add_argument("--other-fraction", type=float, default=0.1,
                        help="share of artifacts put in other namespaces (not searched by the queries)")
    parser.add_argument("--breakdown-samples", type=int, default=100,
                        help="queries timed part by part in-process after the server run (0: skip)")
    parser.add_argument("--build-memory-limit", default="4GB", help="DuckDB memory limit while building")
    add_server_args(parser)
    args = parser.parse_args()
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
