"""Console page times at scale, from a real browser (a benchmark, not a test).

1. Build a store of about N artifacts (`--artifacts`, default 100,000; the report gives the exact count) in bulk,
   with bench/query.py's builder: SciFact abstracts go once through the real pipeline (create + index jobs: real
   rows, chunks, postings) as templates (`--templates`, default 2,000), then copies of them are written in bulk
   (fresh ids, names, threads, tags). `--other-fraction` of them land in other namespaces.
   Embeddings are the built-in hash:384 model's, and the server runs with it: a query's embedding costs ~0.1 ms
   here instead of the default model's few ms (see bench/query.py for that cost).
2. Serve it: `artifact-mcp serve --transport http --auth none` on 127.0.0.1.
3. Drive Debian's Chromium (Playwright) through the console and time each page: the artifacts list (first page,
   50 rows), the list filtered by thread and by tag, oldest first, following "Next page" through the cursor
   pages, and search (hybrid, each query text a fresh SciFact query). Per page: the navigation's wall time in
   the browser until `load` ("page"), and from the document's Navigation Timing: request start -> response end
   ("server": the console's own time plus one local round trip) and response end -> load event ("browser":
   parsing, styles, htmx, layout).

    .venv/bin/python bench/console.py --artifacts 100000 --out bench/results/console.json

Progress goes to stderr; a table to stdout; full figures to --out as JSON.
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

from common import free_port, log, stats, wait_ready, write_report
from query import build_catalog, load_corpus, load_queries, relabel

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _chunks_for(docs: list[tuple[str, str]], artifacts: int) -> int:
    """The builder fills a catalog up to a number of chunks: the number that gives about `artifacts` artifacts,
    from the templates' length (SciFact abstracts make ~3.2 chunks of the default chunker)."""
    per_doc = sum(len(text) for _, text in docs) / len(docs) / 480 + 0.6
    return max(1, round(artifacts * per_doc))


def _timed(page: Any, url: str) -> tuple[float, float, float]:
    started = time.perf_counter()
    response = page.goto(url, wait_until="load")
    wall = (time.perf_counter() - started) * 1000
    if response is None or response.status != 200:
        raise SystemExit(f"{url}: {response.status if response else 'no response'}")
    server, render = page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                                   " return [n.responseEnd - n.requestStart, n.loadEventStart - n.responseEnd]; }")
    return wall, float(server), float(render)


def _run_pages(url: str, queries: list[str], args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from tests.support_browser import chromium

    rng = random.Random(7)
    out: dict[str, dict[str, list[float]]] = {}

    def record(name: str, timing: tuple[float, float, float]) -> None:
        slot = out.setdefault(name, {"page": [], "server": [], "browser": []})
        for kind, value in zip(("page", "server", "browser"), timing, strict=True):
            slot[kind].append(value)

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for _ in range(args.warmup):
            _timed(page, f"{url}/ui/artifacts")
            _timed(page, f"{url}/ui/search?q={queries[0]}")
        q = iter(queries[1:])
        for i in range(args.samples):
            record("artifacts", _timed(page, f"{url}/ui/artifacts"))
            record("artifacts?thread_id", _timed(page, f"{url}/ui/artifacts?thread_id=thread-{rng.randrange(50)}"))
            record("artifacts?tags", _timed(page, f"{url}/ui/artifacts?tags=topic-{rng.randrange(20)}"))
            record("artifacts?sort=oldest", _timed(page, f"{url}/ui/artifacts?sort=oldest"))
            text = next(q, f"{queries[i % len(queries)]} {i}")
            record("search", _timed(page, f"{url}/ui/search?q={text}&mode=hybrid"))
            if i % max(1, args.samples // 5) == 0:
                log(f"  {i + 1}/{args.samples} rounds")
        # Cursor pages: follow "Next page" from the first page.
        page.goto(f"{url}/ui/artifacts")
        for _ in range(args.pages):
            link = page.locator("a[rel=next]")
            if link.count() == 0:
                log(f"  no next page after {len(out.get('artifacts next page', {}).get('page', []))} pages")
                break
            record("artifacts next page", _timed(page, url + (link.get_attribute("href") or "")))
    return {name: {kind: stats(values) for kind, values in slots.items()} for name, slots in out.items()}


def table(result: dict[str, Any]) -> str:
    lines = [f"N={result['build']['artifacts']:,} artifacts ({result['build']['default_scope_artifacts']:,} in the "
             "console's scope)", f"{'page':<23}{'page p50':>9}{'p95':>8}{'server p50':>11}{'p95':>8}"
             f"{'browser p50':>12}{'p95':>8}{'n':>5}"]
    for name, t in result["pages"].items():
        lines.append(f"{name:<23}{t['page']['p50_ms']:>9.1f}{t['page']['p95_ms']:>8.1f}"
                     f"{t['server']['p50_ms']:>11.1f}{t['server']['p95_ms']:>8.1f}"
                     f"{t['browser']['p50_ms']:>12.1f}{t['browser']['p95_ms']:>8.1f}{t['page']['n']:>5}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifacts", type=int, default=100_000, help="artifacts in the store")
    parser.add_argument("--templates", type=int, default=2000, help="artifacts built through the real pipeline")
    parser.add_argument("--dataset", default="/work/shared/data/beir/scifact")
    parser.add_argument("--samples", type=int, default=100, help="timed rounds (one of each page per round)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pages", type=int, default=20, help="cursor pages to follow")
    parser.add_argument("--other-fraction", type=float, default=0.1)
    parser.add_argument("--build-memory-limit", default="4GB")
    parser.add_argument("--clone-batch", type=int, default=100_000)
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--out", default=str(REPO / "bench/results/console.json"))
    args = parser.parse_args()

    root = Path(args.dataset)
    docs = load_corpus(root)[: min(args.templates, args.artifacts)]
    queries = load_queries(root)
    tmp = Path(tempfile.mkdtemp(prefix="bench-console-", dir=args.tmp))
    data = tmp / "data"
    try:
        log(f"building {args.artifacts:,} artifacts ({len(docs):,} through the pipeline) in {data}")
        # The builder checks a few bulk copies against the real pipeline (query_catalog._check_copies), cards
        # included: a mismatch stops the benchmark.
        build = build_catalog(_chunks_for(docs, args.artifacts), data, docs, args)
        relabel(data, "hash:384")
        log(f"built in {build['seconds']:.0f} s: {build['artifacts']:,} artifacts, {build['chunks']:,} chunks")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACT_MCP_")}
        log_path = tmp / "server-stderr.log"
        with log_path.open("wb") as errlog:
            proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("artifact-mcp")), "serve", "--transport", "http", "--auth",
                 "none", "--port", str(port), "--data-dir", str(data), "--embedding-model", "hash:384",
                 "--log-level", "WARNING"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog, env=env)
        try:
            wait_ready(proc, port, log_path, 600)
            pages = _run_pages(f"http://127.0.0.1:{port}", queries, args)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        result = {"build": build, "pages": pages}
        print(table(result))
        write_report(Path(args.out), {
            "benchmark": "console", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "host": platform.node(),
            "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(), "python": platform.python_version(),
            "artifacts": args.artifacts, "templates": len(docs), "samples": args.samples, "embedding": "hash:384",
            "other_fraction": args.other_fraction, **result})
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
