"""Query latency of `query_artifacts` through a real MCP session over stdio (a benchmark, not a test).

For each size N (default 10,000 and 100,000 chunks; 1,000,000 works too), in a fresh temporary data directory:

1. Build the catalog IN-PROCESS, from real text: the BEIR SciFact abstracts (name = title, content = text),
   cycled with a " (copy k)" suffix on the name until the catalog holds N chunks. Most artifacts are in the
   default scope (default/default/default, which the queries search); `--other-fraction` of them go to other
   namespaces, and they carry a few threads and tags, so filters have something to filter out.

   Each distinct abstract goes once through the real store pipeline (`open_store` -> `ArtifactStore.create` ->
   `claim_index_jobs` / `prepare_index` / `commit_index`: real chunking, real BM25 postings, real chunk, job
   and artifact rows): the templates, ~16,750 chunks from the 5,183 abstracts, so a 10,000-chunk catalog is
   all pipeline. The copies beyond them are written in bulk (`_clone`): the template's rows with a fresh id,
   name, namespace, thread and tag (`SELECT t.* REPLACE (...)`), its postings plus the copy's name terms in
   chunk 0, and the vectors the hash embedding gives the copy's text, computed from the templates'; a few
   copies are re-chunked, re-termed and re-embedded by the real `Indexer` and must match. ~10x faster than
   the pipeline (which runs ~100 chunks/s: 3 h for a million chunks).

   The vectors are the built-in `hash:384` embedding's, NOT the real model's: result quality is meaningless
   here, only latency is measured. The dimension (384) is the default model's (all-MiniLM-L6-v2), and the cost
   of a search does not depend on the vector values. After the build the catalog is relabelled as indexed by
   the default model (setting `embedding_model_id` and every artifact's `embedding_model_id`), so the server
   does not re-index it (`--query-model hash:384` labels it for the hash model instead and serves with that:
   every cost but the model's, whose query embedding then takes ~0.1 ms). `--catalog-cache DIR` keeps each
   size's catalog and reuses it in later runs (the same data for a before/after comparison).
2. Start `artifact-mcp serve --data-dir DIR` over stdio with the DEFAULT embedding model (the query
   embedding is computed by the real model in the server, exactly as in production) and
   ARTIFACT_MCP_TIMINGS_FILE; warm up (the first semantic query loads the model); then `--samples` queries in
   each mode (hybrid, semantic, keyword; default top_k=10 and max_context_tokens=2000), one call at a time,
   the three modes interleaved (rotating their order). Every call, warm-up included, has a query text of its
   own (`fresh_texts`: the 809 SciFact queries, then word rotations of them): the server caches query
   embeddings by text (`EmbeddingModel._cached_query`), so a text repeated across modes or repetitions would
   time a cache hit. No search result is cached; the eligible chunks of a scope are (see
   storage/index/search_cache.py), as they are for an agent that searches one scope again and again; the
   breakdown shows what a query pays when they are not (after a write).
3. Optionally (`--breakdown-samples`, default 100), after the server has exited: open the same store in
   this process and time the parts of a query separately (query embedding by the default model, the
   eligibility SQL and grouping, the kept eligibility, in-memory dense and BM25 scoring, reading the hits'
   rows, the context, whole `ArtifactStore.query` per mode), each call that embeds on a fresh text.

Latencies are reported twice: "client" is the round trip seen by the MCP client (JSON-RPC over stdio,
serialization, the client's validation of the result); "server" is the tool handler's duration inside the
server (ARTIFACT_MCP_TIMINGS_FILE middleware, server/timings.py). Next to them, per call, the CPU time the
server's threads used ("cpu", the query embedding included) and the time they were runnable but waited for a
core ("wait"): on a shared machine the latencies move with the load, these two much less. Targets (issue 12,
server side): hybrid p50 <= 30 ms and p95 <= 60 ms at 100,000 chunks with fresh query texts.

    .venv/bin/python bench/query.py --sizes 10000 100000 1000000 --out bench/results/query.json

Progress goes to stderr; a table to stdout; full figures (and settings) to --out as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
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
from common import (
    add_server_args,
    dir_size,
    find_server_pid,
    log,
    proc_status,
    stats,
    thread_times_ms,
    write_report,
)
from mcp import Client, StdioServerParameters
from query_catalog import build_catalog, relabel

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODES = ("hybrid", "semantic", "keyword")


def _done(value: Any) -> Future[Any]:
    """A finished future: `_retrieve` takes the query vector as one (the store computes it concurrently)."""
    fut: Future[Any] = Future()
    fut.set_result(value)
    return fut


SOURCE_DIRS = ("storage", "server", "tools")


def source_fingerprint() -> dict[str, Any]:
    """What code the server runs: git HEAD, the modified files, and a hash of the server's sources as they are
    on disk (others may edit them during a long run: the server started for each size loads them afresh)."""
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


def fresh_texts(queries: list[str], n: int, rng: random.Random) -> list[str]:
    """`n` distinct query texts: the queries in a random order, then, once they run out, their word rotations
    ("b c a", "c a b", ...: the same BM25 terms, a different text and so a different embedding)."""
    pool = list(dict.fromkeys(queries))
    rng.shuffle(pool)
    out: list[str] = []
    seen: set[str] = set()
    shift = 0
    while len(out) < n:
        for q in pool:
            words = q.split()
            text = " ".join(words[shift % len(words):] + words[: shift % len(words)]) if shift else q
            if text in seen:  # a short query has fewer rotations than we need
                text = f"{q} ({shift})"
            if text not in seen:
                seen.add(text)
                out.append(text)
                if len(out) == n:
                    break
        shift += 1
    return out


# --- 1. build: bench/query_catalog.py ------------------------------------------------------------


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
    if args.query_model != "default":
        env["ARTIFACT_MCP_EMBEDDING_MODEL"] = args.query_model
    for key, value in args.env:
        env[key] = value
    catalog = ["--catalog", args.catalog] if args.catalog else []
    params = StdioServerParameters(command=str(REPO / ".venv/bin/artifact-mcp"),
                                   args=["serve", "--data-dir", str(data_dir), *catalog], env=env, cwd=str(workdir))
    # Every call gets a text of its own (no two calls share one, across modes, repetitions and the warm-up): the
    # server caches query embeddings by text (EmbeddingModel._cached_query), and a repeated text would time a
    # cache hit instead of the model.
    texts = fresh_texts(queries, (args.samples + args.warmup) * len(MODES) + 1, random.Random(n))
    warm, texts = texts[-(args.warmup * len(MODES) + 1):], texts[: args.samples * len(MODES)]
    plan: list[tuple[str, str]] = []  # (mode, query) in call order: the modes interleaved, their order rotating
    for i in range(args.samples):
        for j in range(len(MODES)):
            plan.append((MODES[(i + j) % len(MODES)], texts[i * len(MODES) + j]))
    base = {"top_k": args.top_k, "max_context_tokens": args.max_context_tokens}
    result: dict[str, Any] = {}
    client_ms: dict[str, list[float]] = {m: [] for m in MODES}
    cpu_ms: dict[str, list[float]] = {m: [] for m in MODES}  # the server's CPU time per call (all its threads)
    wait_ms: dict[str, list[float]] = {m: [] for m in MODES}  # its threads' time runnable, waiting for a CPU
    hits: dict[str, list[int]] = {m: [] for m in MODES}
    async with Client(params, mode=args.mode, read_timeout_seconds=300) as client:
        pid = find_server_pid(str(data_dir))
        log(f"N={n}: server pid {pid}; warming up ({args.warmup} queries per mode)")
        t = time.perf_counter()
        await call(client, {**base, "query": warm[0], "mode": "semantic"})  # loads the model
        result["first_query_seconds"] = time.perf_counter() - t
        warm_calls = 1
        for i, q in enumerate(warm[1:]):
            await call(client, {**base, "query": q, "mode": MODES[i % len(MODES)]})
            warm_calls += 1
        log(f"N={n}: first query (model load) {result['first_query_seconds']:.1f}s; timing {len(plan)} queries")
        t_start = time.perf_counter()
        load_before = os.getloadavg()
        for i, (mode, q) in enumerate(plan):
            before = thread_times_ms(pid) if pid is not None else None
            out, ms = await call(client, {**base, "query": q, "mode": mode})
            if before is not None and pid is not None:
                after = thread_times_ms(pid)
                cpu_ms[mode].append(after[0] - before[0])
                wait_ms[mode].append(after[1] - before[1])
            client_ms[mode].append(ms)
            hits[mode].append(len(out["results"]))
            if (i + 1) % max(1, len(plan) // 5) == 0:
                log(f"N={n}: {i + 1}/{len(plan)} queries ({time.perf_counter() - t_start:.0f}s)")
        result["load_avg"] = {"before": load_before, "after": os.getloadavg()}
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
            "server_cpu": stats(cpu_ms[m]) if cpu_ms[m] else None,
            "server_runqueue_wait": stats(wait_ms[m]) if wait_ms[m] else None,
            "mean_results": statistics.fmean(hits[m]) if hits[m] else 0.0}
        for m in MODES
    }
    result["warmup_calls"] = warm_calls
    return result


# --- 3. in-process breakdown ---------------------------------------------------------------------


def breakdown(data_dir: Path, queries: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Time the parts of a query on the same catalog, in this process, with the server's settings.

    Every timed call that embeds gets a text of its own (`fresh_texts`, and the model's query cache is emptied
    first): `embed_query` on one text, `store_query_<mode>` on three others. Reaches into the store's internals
    (the search path changes often): a part that no longer exists is skipped with a warning rather than failing
    the benchmark."""
    from artifact_mcp.storage.clock import to_us, utcnow
    from artifact_mcp.storage.index import lexical
    from artifact_mcp.storage.index.pipeline import IndexConfig
    from artifact_mcp.storage.index.search import build_context
    from artifact_mcp.storage.models import QueryRequest, Scope
    from artifact_mcp.storage.ownership.client import StoreConfig, open_store
    from artifact_mcp.storage.services import recall as recall_mod

    cfg = StoreConfig(catalog_path=args.catalog or str(data_dir / "catalog.duckdb"),
                      blob_url=(data_dir / "blobs").resolve().as_uri(),
                      memory_limit="2GB", threads=1,
                      index=IndexConfig(embedding_model=args.query_model))  # the server's defaults
    store = open_store(cfg)
    try:
        scope = Scope(org_id="default", workspace_id="default", namespace_id="default")
        per = 1 + len(MODES)
        texts = fresh_texts(queries, args.breakdown_samples * per, random.Random(len(queries) + 1))
        store.indexer.embed_query("warm up")  # loads the model (in this thread)
        store.query(scope, QueryRequest(query="warm up, too"))  # loads the in-memory search mirror, if any
        model = store.indexer.model
        query_cache = getattr(model, "_cached_query", None)  # the model's query-text cache, where there is one
        if hasattr(query_cache, "cache_clear"):
            query_cache.cache_clear()
        depth = max(store.indexer.config.candidates, 5 * args.top_k)
        icfg = store.indexer.config
        recall = store._recall
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
            for i in range(args.breakdown_samples):
                q = texts[i * per]
                req = QueryRequest(query=q, top_k=args.top_k, max_context_tokens=args.max_context_tokens)
                now = utcnow()
                vector = part("embed_query", store.indexer.embed_query, q)
                terms = part("query_terms", lambda q=q: lexical.query_terms(q))
                if hasattr(recall_mod, "scope_filters"):  # eligibility kept between queries (this branch on)
                    filters = recall_mod.scope_filters(scope, req)
                    # Cold: what a query pays after a write to the chunks (the SQL, then grouping by artifact).
                    got = part("eligible_sql", lambda f=filters: store.db.chunks.eligible_expiry(f))
                    if got is not None:
                        seqs = got[0][got[1] > to_us(now)]
                        part("eligible_group", lambda s=seqs: store.cache.eligible(s))
                    el = part("eligible_kept", lambda f=filters, n=now: recall.eligible(f, n))
                    retrieve_args: tuple[Any, ...] = (filters, depth, now)
                else:
                    filters = recall_mod.query_filters(scope, req, now)
                    seqs = part("eligible_sql", lambda f=filters: store.db.chunks.eligible_seqs(f))
                    el = part("eligible_group", lambda s=seqs: store.cache.eligible(s)) if seqs is not None else None
                    retrieve_args = (filters, depth)
                if el is not None and vector is not None:
                    part("mirror_dense", lambda e=el, v=vector: store.cache.dense(v, e))
                if el is not None and terms is not None:
                    part("mirror_bm25", lambda e=el, t=terms: store.cache.bm25(t, e, icfg.bm25_k1, icfg.bm25_b))
                if vector is not None and terms is not None and "retrieve_hybrid" not in broken:
                    for mode in MODES:
                        got = part(f"retrieve_{mode}", lambda m=mode, v=vector, t=terms, a=retrieve_args:
                                   recall._retrieve(m, _done(v) if m != "keyword" else None, t, *a))
                        if mode == "hybrid" and got is not None:
                            # What query() does with the top_k: read their catalog rows and best chunks.
                            ranked, artifact_of, seq_of = got
                            top = ranked[: args.top_k]
                            ids = [artifact_of(x.segment) for x in top]
                            hit_seqs = [seq_of(x.best_row) for x in top]
                            rows: Any = None
                            if ids and hasattr(recall_mod, "SUMMARY_COLUMNS"):
                                rows = part("hits_catalog_rows", lambda i=ids: store.db.artifacts.fields_of(
                                    i, recall_mod.SUMMARY_COLUMNS))
                            elif ids:
                                rows = part("hits_catalog_rows", lambda i=ids, n=now: store.db.artifacts.get_many(i, n))
                            chunk_rows = part("hits_chunk_rows", lambda h=hit_seqs: store.db.chunks.texts(h))
                            if rows is not None and chunk_rows is not None:
                                entries = [(str(i), str(i), 1, chunk_rows[s].text) for i, s in zip(ids, hit_seqs,
                                                                                                   strict=True)]
                                part("hits_context", lambda e=entries: build_context(e, args.max_context_tokens))
                for j, mode in enumerate(MODES, start=1):
                    part(f"store_query_{mode}", lambda m=mode, t=texts[i * per + j], r=req: store.query(
                        scope, r.model_copy(update={"mode": m, "query": t})))

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
        if hasattr(query_cache, "cache_info"):
            info = query_cache.cache_info()
            out["query_cache"] = {"hits": info.hits, "misses": info.misses}
            if info.hits:
                log(f"warning: the breakdown's query embeddings hit the model's cache {info.hits} times")
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
        cached = Path(args.catalog_cache) / f"{n}-{args.other_fraction}" \
            if args.catalog_cache and not args.catalog else None
        if cached is not None and (cached / "build.json").exists():
            # A catalog an earlier run built with these settings (copied: the server writes to its copy).
            log(f"N={n}: copying the catalog built earlier in {cached}")
            shutil.copytree(cached / "data", data_dir)
            build = json.loads((cached / "build.json").read_text())
            build["reused_from"] = str(cached)
        else:
            log(f"N={n}: building the catalog in {data_dir}")
            build = await anyio.to_thread.run_sync(build_catalog, n, data_dir, docs, args, args.catalog)
            if cached is not None:
                shutil.rmtree(cached, ignore_errors=True)
                shutil.copytree(data_dir, cached / "data")
                (cached / "build.json").write_text(json.dumps(build, indent=2) + "\n")
        log(f"N={n}: built {build['chunks']:,} chunks ({build['artifacts']:,} artifacts) in {build['seconds']:.1f}s "
            f"= {build['chunks_per_second']:.0f} chunks/s with the hash embedding "
            f"(pipeline {build['create_seconds'] + build['index_seconds']:.1f}s for {build['pipeline_chunks']:,} "
            f"chunks, bulk copies {build['clone_seconds']:.1f}s for {build['cloned_chunks']:,})")
        build["labelled_as"] = relabel(data_dir, args.query_model, args.catalog)
        result: dict[str, Any] = {"target_chunks": n, "chunks": build["chunks"], "build": build,
                                  "catalog": "postgresql" if args.catalog else "duckdb",
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
            f"{'server p95':>11} {'cpu p50':>8} {'wait p50':>9} {'hits':>5}")
    lines = [head, "-" * len(head)]
    for r in results:
        for m in MODES:
            d = r["modes"][m]
            lines.append(f"{r['chunks']:>10,} {m:<9} {fmt(d['client'], 'p50_ms'):>11} {fmt(d['client'], 'p95_ms'):>11} "
                         f"{fmt(d['server'], 'p50_ms'):>11} {fmt(d['server'], 'p95_ms'):>11} "
                         f"{fmt(d.get('server_cpu'), 'p50_ms'):>8} {fmt(d.get('server_runqueue_wait'), 'p50_ms'):>9} "
                         f"{d['mean_results']:>5.1f}")
    lines.append("")
    lines.append(f"{'chunks':>10} {'build s':>8} {'chunks/s':>9} {'artifacts':>10} {'data MB':>8} {'peak RSS MB':>12} "
                 f"{'1st query s':>12} {'load avg':>10}")
    for r in results:
        b = r["build"]
        load = r.get("load_avg", {})
        lines.append(f"{r['chunks']:>10,} {b['seconds']:>8.1f} {b['chunks_per_second']:>9.0f} {b['artifacts']:>10,} "
                     f"{r['data_dir_mb']:>8.0f} {r.get('server_peak_rss_mb', float('nan')):>12.0f} "
                     f"{r['first_query_seconds']:>12.1f} "
                     f"{load.get('before', [0])[0]:>4.1f}-{load.get('after', [0])[0]:<4.1f}")
    if any("breakdown" in r for r in results):
        lines.append("")
        lines.append("in-process breakdown, ms p50/p95 (embed_query = the default model; store_query_* = the whole"
                     " ArtifactStore.query, embedding included):")
        for r in results:
            for k, v in r.get("breakdown", {}).items():
                if k not in ("skipped", "query_cache"):
                    lines.append(f"{r['chunks']:>10,}  {k:<22} {v['p50_ms']:>8.2f} {v['p95_ms']:>8.2f}")
    return "\n".join(lines)


def postgres_ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per size: each mode's server p50 on PostgreSQL over DuckDB's, and the in-process whole-query p50s."""
    out = []
    for pg in (r for r in results if r.get("catalog") == "postgresql"):
        duck = next((r for r in results if r.get("catalog") == "duckdb" and r["target_chunks"] == pg["target_chunks"]),
                    None)
        if duck is None:
            continue
        ratios: dict[str, float] = {}
        for mode in MODES:
            for side in ("server", "client"):
                a, b = (r.get("modes", {}).get(mode, {}).get(side) for r in (pg, duck))
                if a and b:
                    ratios[f"{mode}_{side}_p50"] = a["p50_ms"] / b["p50_ms"]
            a, b = (r.get("breakdown", {}).get(f"store_query_{mode}") for r in (pg, duck))
            if a and b:
                ratios[f"{mode}_in_process_p50"] = a["p50_ms"] / b["p50_ms"]
        out.append({"chunks": pg["chunks"], "postgres_over_duckdb_p50": ratios})
        log(f"N={pg['chunks']:,}: PostgreSQL / DuckDB p50 " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    return out


async def main_async(args: argparse.Namespace) -> None:
    root = Path(args.dataset)
    docs = load_corpus(root)
    queries = load_queries(root)
    log(f"{len(docs)} documents, {len(queries)} queries from {root}")
    args.source = source_fingerprint()
    log(f"sources: git {args.source['git_head'][:8]}, {len(args.source['modified'])} modified files")
    results = []
    catalogs: list[Any] = [None]
    stack = contextlib.ExitStack()
    if args.postgres:
        # A throwaway PostgreSQL from the machine's binaries (tests/support_postgres.py): each size on DuckDB,
        # then built again (through the pipeline) in a fresh PostgreSQL database and served from it.
        sys.path.insert(0, str(REPO))
        from tests.support_postgres import postgres_server

        catalogs.append(stack.enter_context(postgres_server()))
    with stack:
        for n in args.sizes:
            for pg in catalogs:
                args.catalog = pg.new_database() if pg is not None else None
                log(f"--- N={n} on {'PostgreSQL' if pg is not None else 'DuckDB'}")
                results.append(await run_size(n, docs, queries, args))
                print(table(results[-1:]), file=sys.stderr, flush=True)
    args.catalog = None
    ratios = postgres_ratios(results)
    report = {
        "benchmark": "query", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
        "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(), "python": platform.python_version(),
        "mode": args.mode, "query_model": args.query_model, "dataset": str(root), "samples": args.samples,
        "warmup": args.warmup, "top_k": args.top_k,
        "max_context_tokens": args.max_context_tokens, "other_fraction": args.other_fraction,
        "breakdown_samples": args.breakdown_samples, "env": dict(args.env), "source_at_start": args.source,
        "source_changed_during_run": any(r["source"]["sha256"] != args.source["sha256"] for r in results)
        or source_fingerprint()["sha256"] != args.source["sha256"],
        "targets": {"hybrid_server_p50_ms_at_100k": 30, "hybrid_server_p95_ms_at_100k": 60},
        "results": results, "postgres_over_duckdb": ratios,
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
    parser.add_argument("--query-model", default="default",
                        help="the server's embedding model: 'default' (the real one), or 'hash:384' to time "
                             "everything but the model (a hash query embedding costs ~0.1 ms)")
    parser.add_argument("--postgres", action="store_true",
                        help="every size on a throwaway PostgreSQL too (built through the pipeline), with ratios")
    parser.add_argument("--catalog-cache", default=None,
                        help="keep each size's built catalog here and reuse it in later runs (the same data for "
                             "a before/after comparison); a run copies it, so the cached one stays unqueried")
    parser.add_argument("--clone-batch", type=int, default=100_000,
                        help="chunks written per bulk transaction when copying the templates")
    add_server_args(parser)
    args = parser.parse_args()
    anyio.run(main_async, args)


if __name__ == "__main__":
    main()
