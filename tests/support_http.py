"""Helpers for tests that run `artifact-mcp serve` over HTTP on 127.0.0.1 and talk to it with tokens."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import server_env
from tests.test_stdio import TIMEOUT, open_client, server_command

# A legacy-era `initialize`, for raw HTTP requests.
INITIALIZE = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(proc: subprocess.Popen[bytes], port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"server did not accept connections on port {port} within {TIMEOUT} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def serve_http(data_dir: Path, *args: str, transport: str = "http", env: dict[str, str] | None = None) -> Iterator[int]:
    """`artifact-mcp serve --transport http` on a free port; yields the port, stops the server afterwards."""
    deadline = time.monotonic() + TIMEOUT
    log_path = data_dir.parent / f"{data_dir.name}-stderr.log"
    for _attempt in range(3):  # a free port can be taken by someone else before the server binds it
        port = free_port()
        with log_path.open("ab") as errlog:
            proc = subprocess.Popen(
                [server_command(), "serve", "--transport", transport, "--host", "127.0.0.1", "--port", str(port),
                 "--data-dir", str(data_dir), *args],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog, cwd=data_dir.parent,
                env=env or server_env(),
            )
        try:
            if wait_for_port(proc, port, deadline):
                yield port
                return
        finally:
            stop(proc)
    raise AssertionError(f"server could not start: {log_path.read_text()[-3000:]}")


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([server_command(), *args, "--data-dir", str(data_dir)], capture_output=True, text=True,
                          env=server_env(), timeout=TIMEOUT)


def create_token(data_dir: Path, principal: str, scopes: list[str], permissions: list[str],
                 default_scope: str | None = None, *extra: str) -> str:
    args = ["token", "create", "--principal", principal]
    for scope in scopes:
        args += ["--scope", scope]
    for permission in permissions:
        args += ["--permission", permission]
    if default_scope:
        args += ["--default-scope", default_scope]
    done = cli(data_dir, *args, *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@asynccontextmanager
async def mcp_http(port: int, headers: dict[str, str] | None = None, mode: str = "auto") -> AsyncIterator[Client]:
    """An MCP client over streamable HTTP sending `headers` (e.g. the bearer token) on every request."""
    async with httpx.AsyncClient(headers=headers or {}, timeout=TIMEOUT) as http:
        transport: Any = streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
        async with open_client(transport, mode) as client:
            yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Server:
    """A running HTTP server under test, with the tokens made for it."""

    def __init__(self, data_dir: Path, port: int, tokens: dict[str, str]) -> None:
        self.data_dir, self.port, self.tokens = data_dir, port, tokens

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return (self.data_dir.parent / f"{self.data_dir.name}-stderr.log").read_text()
