"""Transfer benchmark: the people's CLI moving files in and out of a store a server owns (a benchmark, not a test).

1. a folder of `--files` mixed files (md, py, json, pdf, png; sizes spread around `--kb` KiB);
2. `artifact-mcp serve` (stdio) owning a fresh data directory, held open by an MCP client session;
3. `artifact-mcp import DIR -r` as its own process (it forwards to the server over the local socket): wall time,
   files/s and MB/s; then the same command again (every file unchanged: the cost of a no-op re-import);
4. the same files over MCP (stdio, the same session, in another thread): `upload_artifact` (base64) for every
   file, `create_artifact` (content) for the text ones, one call at a time;
5. `artifact-mcp export` to a directory and to a .tar.gz, with the server running: MB/s of blob bytes;
6. `artifact-mcp restore` of each into a fresh data directory no server owns: MB/s.

Each CLI figure includes the command's start (interpreter, imports, joining the store); `cli start` (the time of
`artifact-mcp stats` on the same store) is given beside them, and the import's rate net of it.

    .venv/bin/python bench/transfer.py                          # 2000 files of ~32 KiB
    .venv/bin/python bench/transfer.py --files 100 --kb 8       # a quick check

Progress to stderr; a table to stdout; figures to --out as JSON.
"""

from __future__ import annotations

import argparse
import base64
import json
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
from common import log, write_report
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

REPO = Path(__file__).resolve().parent.parent
MB = 1_000_000
TEXT_KINDS = ("md", "py", "json")


def cli_path() -> str:
    return str(Path(sys.executable).with_name("artifact-mcp"))


def env(embedding: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACT_MCP_")}
    out["ARTIFACT_MCP_EMBEDDING_MODEL"] = embedding
    return out


def make_files(root: Path, n: int, kb: int, seed: int = 1) -> list[Path]:
    rng = random.Random(seed)
    words = ["store", "recall", "index", "artifact", "vector", "chunk", "report", "summary", "plan", "agent",
             "thread", "version"]
    paths = []
    for i in range(n):
        kind = ("md", "py", "json", "pdf", "png")[i % 5]
        size = max(64, int(rng.expovariate(1 / (kb * 1024))))
        folder = root / f"d{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"f{i:05d}.{kind}"
        if kind in ("md", "py"):
            text = " ".join(rng.choice(words) for _ in range(size // 6))
            path.write_text(f"# file {i}\n{text}\n" if kind == "md" else f"X = '''{text}'''\n")
        elif kind == "json":
            path.write_text(json.dumps({"i": i, "items": [rng.choice(words) for _ in range(size // 9)]}))
        elif kind == "pdf":
            path.write_bytes(b"%PDF-1.4\n" + rng.randbytes(size) + b"\n%%EOF\n")
        else:
            path.write_bytes(b"\x89PNG\r\n\x1a\n" + rng.randbytes(size))
        paths.append(path)
    return paths


def run_cli(data: Path, embedding: str, *args: str) -> tuple[float, dict[str, Any]]:
    start = time.perf_counter()
    done = subprocess.run([cli_path(), *args, "--data-dir", str(data), "--json"], capture_output=True, text=True,
                          env=env(embedding), timeout=3600)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"artifact-mcp {' '.join(args)} failed: {done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)


def rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


async def over_mcp(client: Client, files: list[Path]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    start, size = time.perf_counter(), 0
    for p in files:
        data = p.read_bytes()
        size += len(data)
        r = await client.call_tool("upload_artifact", {"name": p.name, "data_base64": base64.b64encode(data).decode(),
                                                       "thread_id": "mcp-upload"})
        assert not r.is_error, r.content
    wall = time.perf_counter() - start
    out["upload_artifact"] = {"files": len(files), "bytes": size, "seconds": wall,
                              "files_per_s": rate(len(files), wall), "mb_per_s": rate(size / MB, wall)}
    texts = [p for p in files if p.suffix[1:] in TEXT_KINDS]
    start, size = time.perf_counter(), 0
    for p in texts:
        text = p.read_text()
        size += len(text.encode())
        r = await client.call_tool("create_artifact", {"name": p.name, "content": text, "thread_id": "mcp-create"})
        assert not r.is_error, r.content
    wall = time.perf_counter() - start
    out["create_artifact"] = {"files": len(texts), "bytes": size, "seconds": wall,
                              "files_per_s": rate(len(texts), wall), "mb_per_s": rate(size / MB, wall)}
    return out


async def main_async(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    src, data = work / "src", work / "data"
    log(f"writing {args.files} files of ~{args.kb} KiB")
    files = make_files(src, args.files, args.kb)
    total = sum(p.stat().st_size for p in files)
    report: dict[str, Any] = {"files": len(files), "bytes": total, "embedding": args.embedding}
    params = StdioServerParameters(command=cli_path(), args=["serve", "--data-dir", str(data)], cwd=str(work),
                                   env=env(args.embedding))
    with (work / "serve.log").open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            await client.call_tool("list_artifacts", {"limit": 1})
            start_s, _ = await anyio.to_thread.run_sync(run_cli, data, args.embedding, "stats")
            report["cli_start_s"] = start_s
            log("import")
            wall, res = await anyio.to_thread.run_sync(run_cli, data, args.embedding, "import", str(src), "-r")
            assert res["created"] == len(files), res
            net = max(wall - start_s, 1e-9)
            report["import"] = {"seconds": wall, "files_per_s": rate(len(files), wall),
                                "mb_per_s": rate(total / MB, wall), "net_files_per_s": rate(len(files), net),
                                "net_mb_per_s": rate(total / MB, net)}
            log("re-import (no-op)")
            wall, res = await anyio.to_thread.run_sync(run_cli, data, args.embedding, "import", str(src), "-r")
            assert res["unchanged"] == len(files), res
            report["reimport_noop"] = {"seconds": wall, "files_per_s": rate(len(files), wall)}
            log("over MCP")
            report["mcp"] = await over_mcp(client, files)
            for name, dest in (("export_dir", work / "archive"), ("export_tgz", work / "archive.tar.gz")):
                log(name)
                wall, res = await anyio.to_thread.run_sync(run_cli, data, args.embedding, "export", str(dest))
                report[name] = {"seconds": wall, "versions": res["versions"], "blob_bytes": res["bytes"],
                                "mb_per_s": rate(res["bytes"] / MB, wall),
                                "archive_bytes": sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
                                if dest.is_dir() else dest.stat().st_size}
    for name, source in (("restore_dir", work / "archive"), ("restore_tgz", work / "archive.tar.gz")):
        log(name)
        wall, res = await anyio.to_thread.run_sync(run_cli, work / f"{name}-data", args.embedding, "restore",
                                                   str(source))
        report[name] = {"seconds": wall, "versions": res["restored"], "blob_bytes": res["bytes"],
                        "mb_per_s": rate(res["bytes"] / MB, wall)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--kb", type=int, default=32, help="mean file size in KiB (exponentially spread)")
    parser.add_argument("--embedding", default="hash:384", help="the server's embedding model (indexing runs in "
                        "the background meanwhile; default hash:384 so the figures are about moving bytes)")
    parser.add_argument("--tmp", default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "transfer.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-transfer-", dir=args.tmp))
    try:
        report = anyio.run(main_async, args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report.update(machine=platform.machine(), cpus=os.cpu_count(), python=platform.python_version())
    rows = [("cli start (stats)", f"{report['cli_start_s']:.2f} s", "", "")]
    imp = report["import"]
    rows.append(("import", f"{imp['seconds']:.2f} s", f"{imp['files_per_s']:.0f} files/s ({imp['net_files_per_s']:.0f}"
                 " net)", f"{imp['mb_per_s']:.1f} MB/s ({imp['net_mb_per_s']:.1f} net)"))
    rows.append(("re-import, all unchanged", f"{report['reimport_noop']['seconds']:.2f} s",
                 f"{report['reimport_noop']['files_per_s']:.0f} files/s", ""))
    for tool, fig in report["mcp"].items():
        rows.append((f"MCP {tool}", f"{fig['seconds']:.2f} s", f"{fig['files_per_s']:.0f} files/s",
                     f"{fig['mb_per_s']:.1f} MB/s"))
    for name in ("export_dir", "export_tgz", "restore_dir", "restore_tgz"):
        fig = report[name]
        rows.append((name.replace("_", " "), f"{fig['seconds']:.2f} s", f"{fig['versions']} versions",
                     f"{fig['mb_per_s']:.1f} MB/s"))
    print(f"{report['files']} files, {report['bytes'] / MB:.1f} MB, embedding {report['embedding']}")
    for row in rows:
        print(f"  {row[0]:<26} {row[1]:>9}  {row[2]:<26} {row[3]}")
    write_report(Path(args.out), report)


if __name__ == "__main__":
    main()
