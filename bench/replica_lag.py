"""Cross-replica search visibility: how long after a write acknowledged by one replica another replica's search
finds it (a benchmark, not a test; issue 13's target: p95 <= 1 s).

Starts a throwaway PostgreSQL (tests/support_postgres.py) and two replicas on it (`serve --transport http`,
`--auth none`, shared blob directory, hash:384 embeddings unless `--embedding-model default`), then `--samples`
times: create a small artifact with a fresh word through replica A (REST), and poll replica B's keyword search for
that word every `--poll-ms` until it is the top result. The lag includes A's (or B's: whichever claims the job)
indexing and B's following of the change feed (LISTEN/NOTIFY, 0.5 s polling as fallback).

    .venv/bin/python bench/replica_lag.py --samples 100 --out bench/results/replica_lag.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
from common import log, stats, write_report

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NS = "/v1/orgs/default/workspaces/default/namespaces/default"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--poll-ms", type=float, default=10)
    parser.add_argument("--embedding-model", default="hash:384")
    parser.add_argument("--out", default=str(REPO / "bench/results/replica_lag.json"))
    args = parser.parse_args()
    from tests.support_http import serve_http
    from tests.support_postgres import postgres_server

    lags: list[float] = []
    with tempfile.TemporaryDirectory(prefix="replica-lag-") as tmp, postgres_server() as pg, ExitStack() as stack:
        url = pg.new_database()
        blobs = (Path(tmp) / "blobs").resolve().as_uri()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACT_MCP_")}
        env["ARTIFACT_MCP_LOG_LEVEL"] = "WARNING"
        ports = [stack.enter_context(serve_http(Path(tmp) / f"r{i}", "--catalog", url, "--blob-url", blobs,
                                                "--auth", "none", "--embedding-model", args.embedding_model,
                                                env=env)) for i in range(2)]
        a = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{ports[0]}", timeout=60))
        b = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{ports[1]}", timeout=60))
        b.post(f"{NS}/artifacts/query", json={"query": "warm", "mode": "keyword"})  # B's cache loaded
        for i in range(args.samples):
            word = f"zq{uuid.uuid4().hex[:10]}"
            made = a.post(f"{NS}/artifacts", json={"name": f"lag {i}", "content": f"entry {word} for the lag bench"})
            made.raise_for_status()
            t0 = time.perf_counter()
            aid = made.json()["artifact_id"]
            while True:
                hits = b.post(f"{NS}/artifacts/query", json={"query": word, "mode": "keyword", "top_k": 1}).json()
                if hits["results"] and hits["results"][0]["artifact"]["artifact_id"] == aid:
                    break
                if time.perf_counter() - t0 > 30:
                    raise SystemExit(f"sample {i}: not found on replica B after 30 s")
                time.sleep(args.poll_ms / 1000)
            lags.append((time.perf_counter() - t0) * 1000)
            if (i + 1) % 20 == 0:
                log(f"{i + 1} samples, p50 so far {sorted(lags)[len(lags) // 2]:.0f} ms")
    summary = stats(lags)
    print(f"cross-replica search visibility over {len(lags)} writes: p50 {summary['p50_ms']:.0f} ms, "
          f"p95 {summary['p95_ms']:.0f} ms, max {summary['max_ms']:.0f} ms (target p95 <= 1000 ms)")
    write_report(Path(args.out), {"benchmark": "replica_lag", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                  "host": platform.node(), "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
                                  "embedding_model": args.embedding_model, "poll_ms": args.poll_ms,
                                  "lag": summary})


if __name__ == "__main__":
    main()
