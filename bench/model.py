"""The default embedding model's variants side by side, in one process and one run (a benchmark, not a test).

For each variant (`default:torch` when torch is installed, `default:fp32`, `default:int8` = `default`): throughput
on the same documents (docs/s, batches of 32, each variant's own batching), query embedding p50/p95 (one query
at a time), cosine of its document vectors to fp32's, whether a text's vector depends on the texts batched with
it, and dense-only retrieval quality on a BEIR dataset (nDCG@10, Recall@100: exact cosine over the document
vectors). Documents are title + text, those judged for the split's queries first, then others up to --docs.

    .venv/bin/python bench/model.py ../shared/data/beir/scifact --split train --docs 1200
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recall import load_beir  # noqa: E402

from artifact_mcp.storage.index.embeddings import build_model  # noqa: E402


def ndcg_recall(scores: np.ndarray, doc_ids: list[str], qrels: dict[str, int]) -> tuple[float, float]:
    order = np.argsort(-scores)
    top = [doc_ids[i] for i in order[:100]]
    dcg = sum(qrels.get(d, 0) / math.log2(r + 2) for r, d in enumerate(top[:10]))
    ideal = sorted(qrels.values(), reverse=True)[:10]
    idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
    found = sum(1 for d in top if qrels.get(d, 0) > 0)
    return (dcg / idcg if idcg else 0.0), found / max(1, sum(1 for g in qrels.values() if g > 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--split", default="train")
    ap.add_argument("--docs", type=int, default=1200)
    ap.add_argument("--variants", nargs="*", default=None)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "model.json")
    args = ap.parse_args()

    corpus, queries, qrels = load_beir(args.dataset, args.split)
    judged = [d for d in corpus if any(d in q for q in qrels.values())]
    rest = [d for d in corpus if d not in set(judged)]
    doc_ids = (judged + rest)[: max(args.docs, len(judged))]
    texts = [f"{corpus[d]['title']}\n\n{corpus[d]['text']}" for d in doc_ids]
    qids = [q for q in qrels if q in queries]
    variants = args.variants or (["default:torch"] if importlib.util.find_spec("torch") else []) + [
        "default:fp32", "default:int8"]
    print(f"{len(texts)} documents ({len(judged)} judged), {len(qids)} queries", file=sys.stderr)

    results: dict[str, dict] = {}
    reference: np.ndarray | None = None
    for spec in variants:
        t0 = time.perf_counter()
        model = build_model(spec)
        load_s = time.perf_counter() - t0
        model.embed_texts(texts[:32])  # warm
        t0 = time.perf_counter()
        vectors = model.embed_texts(texts)
        docs_per_s = len(texts) / (time.perf_counter() - t0)
        alone = np.stack([model.embed_texts([t])[0] for t in texts[:16]])
        batch_dependence = float(1 - (alone * vectors[:16]).sum(1).min())
        lat, nd, rc = [], [], []
        for q in qids:
            t0 = time.perf_counter()
            qv = model.embed_query(queries[q])  # what a search does (distinct texts: no cache hits)
            lat.append(time.perf_counter() - t0)
            n, r = ndcg_recall(vectors @ np.asarray(qv, dtype=np.float32), doc_ids, qrels[q])
            nd.append(n)
            rc.append(r)
        if spec == "default:fp32":
            reference = vectors
        results[spec] = {
            "model_id": model.model_id, "load_s": round(load_s, 2), "docs_per_s": round(docs_per_s, 1),
            "query_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 2),
            "query_p95_ms": round(float(np.percentile(lat, 95)) * 1000, 2),
            "ndcg@10": round(float(np.mean(nd)), 4), "recall@100": round(float(np.mean(rc)), 4),
            "batch_dependence": batch_dependence, "_vectors": vectors,
        }
        print(f"{spec}: {results[spec]['docs_per_s']} docs/s, nDCG@10 {results[spec]['ndcg@10']}", file=sys.stderr)

    base = results.get("default:torch", results.get("default:fp32"))
    print(f"\n{'variant':16} {'docs/s':>8} {'x base':>7} {'q p50 ms':>9} {'q p95 ms':>9} {'nDCG@10':>8} "
          f"{'R@100':>7} {'cos fp32':>9} {'batch dep':>9}")
    for spec, r in results.items():
        vectors = r.pop("_vectors")
        cos = float((vectors * reference).sum(1).mean()) if reference is not None else float("nan")
        r["cosine_to_fp32_mean"] = round(cos, 5)
        r["throughput_ratio"] = round(r["docs_per_s"] / base["docs_per_s"], 2) if base else None
        print(f"{spec:16} {r['docs_per_s']:8.1f} {r['throughput_ratio']:7.2f} {r['query_p50_ms']:9.2f} "
              f"{r['query_p95_ms']:9.2f} {r['ndcg@10']:8.4f} {r['recall@100']:7.4f} {cos:9.5f} "
              f"{r['batch_dependence']:9.1e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"docs": len(texts), "queries": len(qids), "variants": results}, indent=2))


if __name__ == "__main__":
    main()
