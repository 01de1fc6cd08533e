"""Retrieval quality and ingest throughput through a real MCP session (a benchmark, not a test).

Loads a BEIR-format dataset (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`), stores every
document as an artifact with `create_artifact` (name = title, content = text) on a fresh
`artifact-mcp serve` over stdio, waits until the background jobs have indexed all of them, then runs
every judged query through `query_artifacts` in each mode and prints nDCG@10, Recall@100 and MRR@10.

Ingest throughput is chunks per second through the whole pipeline (MCP create -> catalog -> job ->
chunking -> embedding -> chunks + postings committed), measured from the first create to the last
artifact indexed. Next to it, in the same run, the raw throughput of the embedding model alone on the
very same chunk texts (same model, same batch size, in this process, with the server idle).

    .venv/bin/python bench/recall.py ../shared/data/beir/scifact --split train

Server settings can be varied with --env (e.g. --env ARTIFACT_MCP_SEARCH_FUSION=rrf). Progress goes to
stderr; a table to stdout; figures to --out as JSON.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
from common import find_server_pid, log, pct, proc_status
from mcp import Client, StdioServerParameters

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))




def load_beir(root: Path, split: str) -> tuple[dict[str, dict[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    corpus = {}
    with open(root / "corpus.jsonl") as f:
        for line in f:
            d = json.loads(line)
            corpus[str(d["_id"])] = {"title": d.get("title") or "", "text": d.get("text") or ""}
    queries = {}
    with open(root / "queries.jsonl") as f:
        for line in f:
            d = json.loads(line)
            queries[str(d["_id"])] = d["text"]
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(root / "qrels" / f"{split}.tsv") as f:
        reader = csv.reader(f, delimiter="\t")
        next(reader)
        for qid, did, score in reader:
            qrels[qid][did] = int(score)
    return corpus, {q: t for q, t in queries.items() if q in qrels}, dict(qrels)


def ndcg_at(ranked: list[str], rels: dict[str, int], k: int = 10) -> float:
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rels.values(), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], rels: dict[str, int], k: int = 100) -> float:
    relevant = {d for d, r in rels.items() if r > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def mrr_at(ranked: list[str], rels: dict[str, int], k: int = 10) -> float:
    for i, d in enumerate(ranked[:k]):
        if rels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0




async def ingest(client: Client, corpus: dict[str, dict[str, str]], concurrency: int) -> dict[str, str]:
    """Create every document; artifact_id -> doc id."""
    ids: dict[str, str] = {}
    items = list(corpus.items())
    sem = anyio.Semaphore(concurrency)
    done = 0

    async def one(doc_id: str, doc: dict[str, str]) -> None:
        nonlocal done
        async with sem:
            result = await client.call_tool("create_artifact", {
                "name": doc["title"] or doc_id, "content": doc["text"] or doc["title"] or doc_id,
                "artifact_type": "abstract", "metadata": {"doc_id": doc_id},
            })
            if result.is_error:
                raise RuntimeError(result.content[0].text)
            ids[result.structured_content["artifact_id"]] = doc_id
            done += 1
            if done % 1000 == 0:
                log(f"created {done}/{len(items)}")

    async with anyio.create_task_group() as tg:
        for doc_id, doc in items:
            tg.start_soon(one, doc_id, doc)
    return ids


async def wait_indexed(client: Client, n: int) -> None:
    last = -1
    while True:
        open_jobs = 0
        for status in ("pending", "processing"):
            page = (await client.call_tool("list_artifacts", {"status": status, "limit": 1})).structured_content
            open_jobs += page["total"]
        if open_jobs == 0:
            return
        if open_jobs != last:
            log(f"indexing: {n - open_jobs}/{n} done")
            last = open_jobs
        await anyio.sleep(0.5)


async def count_chunks(client: Client) -> tuple[int, int]:
    """(total chunks, artifacts not indexed)."""
    chunks = not_indexed = 0
    cursor = None
    while True:
        args: dict[str, Any] = {"limit": 200}
        if cursor:
            args["cursor"] = cursor
        page = (await client.call_tool("list_artifacts", args)).structured_content
        for a in page["artifacts"]:
            chunks += a["chunk_count"]
            not_indexed += not a["is_indexed"]
        cursor = page["next_cursor"]
        if not cursor:
            return chunks, not_indexed


def raw_embedding_rate(corpus: dict[str, dict[str, str]], env: dict[str, str]) -> tuple[float, int, float]:
    """(chunks/s, chunks, seconds) of the embedding model alone on the chunks the pipeline embeds."""
    from artifact_mcp.server.settings import Settings
    from artifact_mcp.storage.index.pipeline import Indexer

    os.environ.update(env)
    cfg = Settings(_env_file=None).index_config()
    indexer = Indexer(cfg)
    texts = []
    for doc_id, doc in corpus.items():
        row = SimpleNamespace(name=doc["title"] or doc_id, mime_type="text/plain", file_name=None)
        texts += [c.embed_text for c in indexer.prepare(row, doc["text"] or doc["title"] or doc_id)]
    indexer.embed(texts[:64])  # load and warm up outside the timing
    t = time.perf_counter()
    indexer.embed(texts)
    secs = time.perf_counter() - t
    return len(texts) / secs, len(texts), secs


async def ingest_only(corpus: dict[str, dict[str, str]], env: dict[str, str], concurrency: int) -> dict[str, Any]:
    """Ingest `corpus` into a fresh server with `env` and wait until it is indexed: chunks/s and peak RSS."""
    data_dir = tempfile.mkdtemp(prefix="recall-bench-")
    params = StdioServerParameters(
        command=str(REPO / ".venv" / "bin" / "artifact-mcp"), args=["serve", "--data-dir", data_dir], env=env
    )
    try:
        async with Client(params, read_timeout_seconds=600) as client:
            t0 = time.perf_counter()
            ids = await ingest(client, corpus, concurrency)
            await wait_indexed(client, len(ids))
            seconds = time.perf_counter() - t0
            chunks, _ = await count_chunks(client)
            pid = find_server_pid(data_dir)
            rss = proc_status(pid).get("VmHWM", 0) / 1024 if pid else float("nan")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return {"artifacts": len(ids), "chunks": chunks, "seconds": seconds, "chunks_per_s": chunks / seconds,
            "server_peak_rss_mb": rss}


async def compare_ingest(corpus: dict[str, dict[str, str]], env: dict[str, str], model: str, docs: int,
                         concurrency: int) -> dict[str, Any]:
    """The configured model's pipeline next to `model`'s (the old torch pipeline) on the same first `docs`
    documents, back to back in this run."""
    subset = dict(list(corpus.items())[:docs])
    ours = await ingest_only(subset, env, concurrency)
    log(f"compare: configured model {ours['chunks_per_s']:.1f} chunks/s")
    theirs = await ingest_only(subset, {**env, "ARTIFACT_MCP_EMBEDDING_MODEL": model}, concurrency)
    log(f"compare: {model} {theirs['chunks_per_s']:.1f} chunks/s")
    return {"model": model, "documents": len(subset), "configured": ours, "compared": theirs,
            "ratio": ours["chunks_per_s"] / theirs["chunks_per_s"]}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    corpus, queries, qrels = load_beir(Path(args.dataset), args.split)
    if args.max_queries:
        queries = dict(list(queries.items())[: args.max_queries])
    if args.max_docs:
        # Throughput runs: a prefix of the corpus (quality figures then mean little).
        corpus = dict(list(corpus.items())[: args.max_docs])
    log(f"{len(corpus)} documents, {len(queries)} judged queries")
    data_dir = tempfile.mkdtemp(prefix="recall-bench-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACT_MCP_")}
    extra = dict(kv.split("=", 1) for kv in args.env)
    env.update(extra)
    params = StdioServerParameters(
        command=str(REPO / ".venv" / "bin" / "artifact-mcp"), args=["serve", "--data-dir", data_dir], env=env
    )
    out: dict[str, Any] = {"dataset": args.dataset, "split": args.split, "documents": len(corpus),
                           "queries": len(queries), "settings": extra, "machine": platform.platform(),
                           "cpus": os.cpu_count()}
    try:
        async with Client(params, read_timeout_seconds=600) as client:
            t0 = time.perf_counter()
            ids = await ingest(client, corpus, args.concurrency)
            t_created = time.perf_counter() - t0
            await wait_indexed(client, len(ids))
            t_indexed = time.perf_counter() - t0
            chunks, not_indexed = await count_chunks(client)
            pid = find_server_pid(data_dir)
            rate = chunks / t_indexed
            log(f"ingest: {len(ids)} artifacts, {chunks} chunks in {t_indexed:.1f}s ({rate:.1f} chunks/s); "
                f"creates done after {t_created:.1f}s; not indexed: {not_indexed}")
            out["ingest"] = {"artifacts": len(ids), "chunks": chunks, "seconds": t_indexed,
                             "create_seconds": t_created, "chunks_per_s": rate, "not_indexed": not_indexed}
            out["modes"] = {}
            for mode in args.modes:
                scores: dict[str, list[float]] = {"ndcg@10": [], "recall@100": [], "mrr@10": []}
                lat: list[float] = []
                for n, (qid, text) in enumerate(queries.items(), start=1):
                    t = time.perf_counter()
                    result = await client.call_tool("query_artifacts", {
                        "query": text, "top_k": 100, "mode": mode, "max_context_tokens": 0,
                    })
                    lat.append((time.perf_counter() - t) * 1000)
                    if result.is_error:
                        raise RuntimeError(result.content[0].text)
                    ranked = [ids[h["artifact"]["artifact_id"]] for h in result.structured_content["results"]]
                    scores["ndcg@10"].append(ndcg_at(ranked, qrels[qid]))
                    scores["recall@100"].append(recall_at(ranked, qrels[qid]))
                    scores["mrr@10"].append(mrr_at(ranked, qrels[qid]))
                    if n % 200 == 0:
                        log(f"{mode}: {n}/{len(queries)} queries")
                summary = {k: sum(v) / len(v) for k, v in scores.items()}
                summary.update({"latency_p50_ms": pct(lat, 0.5), "latency_p95_ms": pct(lat, 0.95)})
                out["modes"][mode] = summary
                log(f"{mode}: " + ", ".join(f"{k} {v:.4f}" for k, v in summary.items()))
            status = proc_status(pid) if pid else {}
            out["server_peak_rss_mb"] = status.get("VmHWM", 0) / 1024
            out["server_rss_mb"] = status.get("VmRSS", 0) / 1024
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    raw_rate, raw_chunks, raw_secs = raw_embedding_rate(corpus, extra)
    out["embedding_only"] = {"chunks": raw_chunks, "seconds": raw_secs, "chunks_per_s": raw_rate}
    out["pipeline_overhead"] = raw_rate / out["ingest"]["chunks_per_s"] - 1
    if args.compare_model:
        out["compare"] = await compare_ingest(corpus, env, args.compare_model, args.compare_docs, args.concurrency)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--split", default="test")
    parser.add_argument("--modes", nargs="+", default=["keyword", "semantic", "hybrid"])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-queries", type=int, default=0)
    parser.add_argument("--max-docs", type=int, default=0, help="ingest only the first N documents")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE server setting (repeatable)")
    parser.add_argument("--compare-model", default="default:torch" if importlib.util.find_spec("torch") else "",
                        help="also ingest the first --compare-docs documents with the configured model and with this "
                        "one (default: the old torch pipeline, when torch is installed; '' to skip)")
    parser.add_argument("--compare-docs", type=int, default=1000)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "recall.json"))
    args = parser.parse_args()
    out = anyio.run(run, args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"\n{out['documents']} documents, {out['queries']} queries ({args.split})")
    print(f"{'mode':10} {'nDCG@10':>8} {'R@100':>8} {'MRR@10':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for mode, s in out["modes"].items():
        print(f"{mode:10} {s['ndcg@10']:8.4f} {s['recall@100']:8.4f} {s['mrr@10']:8.4f} "
              f"{s['latency_p50_ms']:8.1f} {s['latency_p95_ms']:8.1f}")
    ing, raw = out["ingest"], out["embedding_only"]
    print(f"\ningest: {ing['chunks']} chunks in {ing['seconds']:.1f}s = {ing['chunks_per_s']:.1f} chunks/s "
          f"(whole pipeline, through MCP)")
    print(f"embedding model alone, same chunks: {raw['chunks_per_s']:.1f} chunks/s; "
          f"pipeline overhead {out['pipeline_overhead'] * 100:.1f}%")
    print(f"server peak RSS {out.get('server_peak_rss_mb', float('nan')):.0f} MiB")
    if "compare" in out:
        c = out["compare"]
        print(f"ingest of the first {c['documents']} documents, back to back: configured model "
              f"{c['configured']['chunks_per_s']:.1f} chunks/s (peak RSS {c['configured']['server_peak_rss_mb']:.0f} "
              f"MiB), {c['model']} {c['compared']['chunks_per_s']:.1f} chunks/s (peak RSS "
              f"{c['compared']['server_peak_rss_mb']:.0f} MiB): {c['ratio']:.2f}x")


if __name__ == "__main__":
    main()
