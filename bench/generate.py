"""Document generation benchmark through a real MCP session over stdio (a benchmark, not a test).

A fresh data directory and `artifact-mcp serve` (the `hash:384` embedding: indexing is not what is measured), a
client without sampling, so the server's extractive path writes:

1. a report of a 20-artifact thread (~2 KB of prose each) in each format (markdown, html, json, pdf), `--repeat`
   times each with `wait=true`: the call's round trip (accept + queue + generate + store) and the job's own
   duration (its started_at -> ended_at);
2. a transcript PDF of about 50 pages (`--pdf-pages`): its page count (pypdf) and the same two durations.

    .venv/bin/python bench/generate.py --out bench/results/generate.json

Target (issue 5): the 50-page PDF in under 5 s. Progress goes to stderr; a table to stdout; figures to --out.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import platform
import random
import shutil
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from common import add_server_args, find_server_pid, log, proc_status, write_report
from mcp import Client, StdioServerParameters
from mcp.types import BlobResourceContents
from pypdf import PdfReader

REPO = Path(__file__).resolve().parent.parent
FORMATS = ("markdown", "html", "json", "pdf")
SUBJECTS = ["The migration", "The release", "Our index", "The new cache", "The API gateway", "The nightly job",
            "The search service", "The billing export", "The on-call rotation", "The load test"]
VERBS = ["failed after", "recovered within", "slowed down during", "was rewritten for", "passed review before",
         "doubled its throughput after", "needed a rollback after", "was documented after"]
OBJECTS = ["the schema change", "the Thursday deploy", "the index rebuild", "a network partition",
           "the dependency upgrade", "the capacity review", "the retry policy change", "the incident review"]
TAILS = ["so we added alerts.", "and the team agreed on a follow-up.", "which cost about ten minutes.",
         "while p95 latency stayed under 40 ms.", "and Alice owns the fix.", "before the weekly sync."]


def prose(rng: random.Random, chars: int) -> str:
    sentences: list[str] = []
    size = 0
    while size < chars:
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(TAILS)}"
        sentences.append(s)
        size += len(s) + 1
        if len(sentences) % 5 == 0:
            sentences[-1] += "\n\n"
    return " ".join(sentences)


def seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


async def call(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(name, args)
    if result.is_error or result.structured_content is None:
        raise RuntimeError(f"{name} failed: {result.content[0].text if result.content else result}")
    return result.structured_content


async def timed_generate(client: Client, args: dict[str, Any]) -> tuple[float, float, dict[str, Any]]:
    t0 = time.perf_counter()
    r = await call(client, "generate_artifact", {**args, "wait": True})
    rtt = time.perf_counter() - t0
    if r["artifact"]["status"] != "completed":
        raise RuntimeError(f"generation ended {r['artifact']['status']}: {r['artifact']['generation_error']}")
    return rtt, seconds(r["job"]["started_at"], r["job"]["ended_at"]), r


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(5)
    workdir = Path(tempfile.mkdtemp(prefix="bench-generate-", dir=args.tmp))
    data_dir = str(workdir / "data")
    env = {**os.environ, "ARTIFACT_MCP_EMBEDDING_MODEL": "hash:384", "ARTIFACT_MCP_LOG_LEVEL": "WARNING"}
    env.update(dict(args.env))
    params = StdioServerParameters(command=str(REPO / ".venv/bin/artifact-mcp"),
                                   args=["serve", "--data-dir", data_dir], env=env, cwd=str(workdir))
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                              "settings": {"artifacts": args.artifacts, "chars": args.chars, "repeat": args.repeat,
                                           "mode": args.mode}}
    try:
        async with Client(params, mode=args.mode, read_timeout_seconds=300) as client:
            pid = find_server_pid(data_dir)
            log(f"server pid {pid}; creating {args.artifacts} artifacts of ~{args.chars} chars")
            ids = [
                (await call(client, "create_artifact", {"name": f"note {i}", "content": prose(rng, args.chars),
                                                        "thread_id": "bench", "source": "bench"}))["artifact_id"]
                for i in range(args.artifacts)
            ]
            formats: dict[str, Any] = {}
            for fmt in FORMATS:
                rtts, jobs = [], []
                for _ in range(args.repeat):
                    rtt, job, r = await timed_generate(client, {"document_type": "report", "format": fmt,
                                                                "thread_id": "bench"})
                    rtts.append(rtt)
                    jobs.append(job)
                formats[fmt] = {"rtt_s_median": statistics.median(rtts), "job_s_median": statistics.median(jobs),
                                "rtt_s": rtts, "job_s": jobs, "bytes": r["artifact"]["size_bytes"]}
                log(f"report/{fmt}: {statistics.median(rtts):.3f} s round trip, {statistics.median(jobs):.3f} s job")
            report["report_20"] = formats

            # ~3.7 KB of prose fills an A4 page at the transcript's 10 pt: material for about --pdf-pages pages.
            per_page = 3700
            n_big = 25
            chars = args.pdf_pages * per_page // n_big
            big = [(await call(client, "create_artifact", {"name": f"log {i}", "content": prose(rng, chars),
                                                           "thread_id": "bench-pdf"}))["artifact_id"]
                   for i in range(n_big)]
            rtts, jobs, pages = [], [], 0
            for _ in range(args.repeat):
                rtt, job, r = await timed_generate(client, {"document_type": "transcript", "format": "pdf",
                                                            "thread_id": "bench-pdf"})
                rtts.append(rtt)
                jobs.append(job)
            read = await client.read_resource(f"artifact://{r['artifact']['artifact_id']}/content")
            contents = read.contents[0]
            assert isinstance(contents, BlobResourceContents)
            pages = len(PdfReader(io.BytesIO(base64.b64decode(contents.blob))).pages)
            report["pdf_transcript"] = {
                "pages": pages, "artifacts": len(big), "bytes": r["artifact"]["size_bytes"],
                "rtt_s_median": statistics.median(rtts), "job_s_median": statistics.median(jobs),
                "rtt_s": rtts, "job_s": jobs, "target_s": 5.0, "meets_target": statistics.median(rtts) < 5.0,
            }
            log(f"transcript pdf: {pages} pages, {statistics.median(rtts):.3f} s round trip")
            if pid is not None:
                report["server_rss_kb"] = proc_status(pid)
            report["material_ids"] = len(ids)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_server_args(parser)
    parser.add_argument("--artifacts", type=int, default=20, help="artifacts in the report's thread")
    parser.add_argument("--chars", type=int, default=2000, help="characters of prose per artifact")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (the median is reported)")
    parser.add_argument("--pdf-pages", type=int, default=50, help="size of the transcript PDF, in pages (roughly)")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/generate.json")
    args = parser.parse_args()
    report = anyio.run(run, args)
    print(f"\nreport of {args.artifacts} artifacts (extractive), median of {args.repeat}:")
    print(f"{'format':<10} {'round trip s':>12} {'job s':>8} {'bytes':>9}")
    for fmt, f in report["report_20"].items():
        print(f"{fmt:<10} {f['rtt_s_median']:>12.3f} {f['job_s_median']:>8.3f} {f['bytes']:>9}")
    p = report["pdf_transcript"]
    print(f"\ntranscript PDF: {p['pages']} pages, {p['bytes']} bytes: round trip {p['rtt_s_median']:.3f} s, "
          f"job {p['job_s_median']:.3f} s (target < {p['target_s']} s: {'met' if p['meets_target'] else 'MISSED'})")
    write_report(args.out, report)


if __name__ == "__main__":
    main()
