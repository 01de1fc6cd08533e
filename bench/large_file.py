"""Large-file benchmark over real HTTP: a 1 GB upload through the REST multipart route, then a download through a
signed link, with the server's memory watched throughout (a benchmark, not a test).

1. a fresh data directory, an API token (`artifact-mcp token create`) and `artifact-mcp serve --transport http`
   (hash:384 embedding, so no model counts in the memory figure; `--max-upload-bytes` raised to fit the file);
2. a file of `--size-mb` random bytes written to disk in 1 MiB pieces (never whole in memory), hashed as written;
3. upload: `POST /v1/orgs/{org}/workspaces/{ws}/namespaces/{ns}/artifacts/upload` (multipart: `file` + `name`),
   the client streaming the file;
4. link: `get_artifact_download_url` over MCP (streamable HTTP, same token);
5. download: `GET` the link, streamed in 1 MiB pieces and hashed; the hash must match; plus one Range request
   checked against the file;
6. the server's RSS (VmRSS of /proc/PID/status) sampled every 20 ms during each phase, and its lifetime peak
   (VmHWM).

Target (issue 4): peak server RSS under 300 MB for a 1 GB file.

    .venv/bin/python bench/large_file.py                 # 1 GB (1024 MiB)
    .venv/bin/python bench/large_file.py --size-mb 200   # quicker

Progress to stderr; a table to stdout; figures to --out as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from common import free_port, log, proc_status, wait_ready, write_report
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
SCOPE = ("bench", "large", "files")


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(MiB, left))
            digest.update(chunk)
            fh.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


class RssSampler:
    """Samples a process's VmRSS on a thread; `phase(name)` starts attributing samples to a new phase."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.pid, self.interval = pid, interval
        self.peaks: dict[str, int] = {}
        self._phase = "idle"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = proc_status(self.pid)["VmRSS"]
            except (OSError, KeyError):
                return
            self.peaks[self._phase] = max(self.peaks.get(self._phase, 0), rss)
            time.sleep(self.interval)

    def phase(self, name: str) -> None:
        self._phase = name

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_server(data: Path, port: int, max_bytes: int, s3: Any = None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACT_MCP_")}
    cmd = [str(REPO / ".venv" / "bin" / "artifact-mcp"), "serve", "--transport", "http", "--host", "127.0.0.1",
           "--port", str(port), "--data-dir", str(data), "--embedding-model", "hash:384",
           "--max-upload-bytes", str(max_bytes)]
    if s3 is not None:
        # Blobs on S3 (moto's standalone server, a real endpoint), reached through the usual AWS settings; the
        # download link is then S3's own presigned URL.
        env.update(s3.env())
        env["ARTIFACT_MCP_NATIVE_DOWNLOAD_LINKS"] = "true"
        cmd += ["--blob-url", f"s3://{s3.new_bucket()}/artifacts"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=(data.parent / "server.log").open("wb"), env=env)
    wait_ready(proc, port, data.parent / "server.log", 60)
    return proc


def create_token(data: Path) -> str:
    org, ws, ns = SCOPE
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "artifact-mcp"), "token", "create", "--data-dir", str(data), "--principal",
         "bench", "--scope", f"{org}/*/*", "--permission", "write", "--default-scope", f"{org}/{ws}/{ns}"],
        capture_output=True, text=True, check=True)
    return done.stdout.strip()


def upload(base: str, token: str, path: Path) -> tuple[dict[str, Any], float]:
    org, ws, ns = SCOPE
    url = f"{base}/v1/orgs/{org}/workspaces/{ws}/namespaces/{ns}/artifacts/upload"
    t0 = time.perf_counter()
    with path.open("rb") as fh:
        response = httpx.post(url, headers={"Authorization": f"Bearer {token}"}, timeout=3600,
                              files={"file": (path.name, fh, "application/octet-stream")},
                              data={"name": "one gigabyte"})
    seconds = time.perf_counter() - t0
    if response.status_code >= 300:
        raise SystemExit(f"upload failed: {response.status_code} {response.text[:2000]}")
    return response.json(), seconds


async def download_link(base: str, token: str, artifact_id: str) -> dict[str, Any]:
    async with (httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
                Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client):
        result = await client.call_tool("get_artifact_download_url", {"artifact_id": artifact_id})
        if result.is_error:
            raise SystemExit(f"get_artifact_download_url failed: {result.content[0].text}")
        assert result.structured_content is not None
        return result.structured_content


def download(url: str) -> tuple[str, int, float]:
    digest = hashlib.sha256()
    size = 0
    t0 = time.perf_counter()
    with httpx.stream("GET", url, timeout=3600) as response:
        if response.status_code != 200:
            raise SystemExit(f"download failed: {response.status_code} {response.read()[:2000]!r}")
        for chunk in response.iter_bytes(MiB):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size, time.perf_counter() - t0


def check_range(url: str, path: Path, size: int) -> bool:
    start = size // 2 - 123
    response = httpx.get(url, headers={"Range": f"bytes={start}-{start + 999}"}, timeout=60)
    with path.open("rb") as fh:
        fh.seek(start)
        expected = fh.read(1000)
    return response.status_code == 206 and response.content == expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024, help="file size in MiB (default 1024 = 1 GB)")
    parser.add_argument("--tmp", default=None, help="parent directory for the data directory and the file")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and the file")
    parser.add_argument("--target-mb", type=float, default=300.0, help="peak server RSS target")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "large_file.json"))
    parser.add_argument("--s3", action="store_true",
                        help="blobs on S3: a throwaway moto server on 127.0.0.1 (tests/support_s3.py)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        s3 = None
        if args.s3:
            sys.path.insert(0, str(REPO))
            from tests.support_s3 import s3_server

            s3 = stack.enter_context(s3_server())
        run(args, s3)


def run(args: argparse.Namespace, s3: Any) -> None:

    size = args.size_mb * MiB
    work = Path(tempfile.mkdtemp(prefix="large-file-", dir=args.tmp))
    data = work / "data"
    data.mkdir()
    try:
        log(f"writing {args.size_mb} MiB of random bytes to {work / 'big.bin'}")
        t0 = time.perf_counter()
        expected = make_file(work / "big.bin", size)
        log(f"  {time.perf_counter() - t0:.1f} s")
        token = create_token(data)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_server(data, port, max_bytes=size + MiB, s3=s3)
        try:
            with RssSampler(proc.pid) as rss:
                time.sleep(0.5)
                idle = proc_status(proc.pid)["VmRSS"]
                rss.phase("upload")
                log("uploading over REST (multipart)")
                art, up_s = upload(base, token, work / "big.bin")
                log(f"  {up_s:.1f} s; artifact {art['artifact_id']} ({art['size_bytes']} B)")
                rss.phase("link")
                link = anyio.run(download_link, base, token, art["artifact_id"])
                rss.phase("download")
                log("downloading through the signed link")
                got, got_size, down_s = download(link["download_url"])
                log(f"  {down_s:.1f} s")
                rss.phase("range")
                range_ok = check_range(link["download_url"], work / "big.bin", size)
                rss.phase("after")
                time.sleep(0.3)
                hwm = proc_status(proc.pid)["VmHWM"]
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        peaks = {k: round(v / 1024, 1) for k, v in rss.peaks.items()}
        report = {
            "bench": "large_file", "blobs": "s3 (moto)" if s3 is not None else "file", "size_bytes": size,
            "platform": platform.platform(), "python": sys.version,
            "cpus": os.cpu_count(),
            "upload": {"seconds": round(up_s, 2), "mb_per_s": round(size / MiB / up_s, 1),
                       "sha256_matches": art["sha256"] == expected, "size_matches": art["size_bytes"] == size},
            "download": {"seconds": round(down_s, 2), "mb_per_s": round(size / MiB / down_s, 1),
                         "sha256_matches": got == expected, "size_matches": got_size == size,
                         "range_request_ok": range_ok},
            "link": {k: link[k] for k in ("expires_in", "file_name", "content_type", "file_size_bytes")}
            | {"host": httpx.URL(link["download_url"]).host, "port": httpx.URL(link["download_url"]).port},
            "server_rss_mb": {"idle": round(idle / 1024, 1), **{f"peak_{k}": v for k, v in peaks.items()},
                              "lifetime_peak_vmhwm": round(hwm / 1024, 1)},
            "target_peak_rss_mb": args.target_mb,
            "meets_target": hwm / 1024 < args.target_mb,
        }
        write_report(Path(args.out), report)
        print(f"{'phase':<10} {'MiB/s':>8} {'seconds':>8} {'peak RSS MB':>12}")
        print(f"{'idle':<10} {'':>8} {'':>8} {report['server_rss_mb']['idle']:>12}")
        for phase in ("upload", "download"):
            r = report[phase]
            print(f"{phase:<10} {r['mb_per_s']:>8} {r['seconds']:>8} {peaks.get(phase, 0):>12}")
        print(f"lifetime peak (VmHWM) {report['server_rss_mb']['lifetime_peak_vmhwm']} MB; "
              f"target < {args.target_mb} MB: {'met' if report['meets_target'] else 'NOT met'}; hashes match: "
              f"{report['upload']['sha256_matches'] and report['download']['sha256_matches']}; range ok: {range_ok}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
