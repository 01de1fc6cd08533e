"""A real S3 endpoint for tests: moto's standalone server (`moto[server]`) on 127.0.0.1, not an in-process patch.
The servers under test reach it through the usual AWS settings (AWS_ENDPOINT_URL and credentials)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.support_http import free_port


class S3Server:
    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

    def new_bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:12]}"
        r = httpx.put(f"{self.endpoint}/{name}", timeout=10)
        assert r.status_code == 200, r.text
        return name


@contextmanager
def s3_server() -> Iterator[S3Server]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("moto_server did not start") from None
                time.sleep(0.1)
        yield S3Server(port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
