"""A throwaway PostgreSQL server for tests, from the machine's own binaries (Debian's `postgresql` package).

One server per test session on 127.0.0.1 (initdb into a temporary directory, fsync off: a crash of the test
machine loses nothing anyone needs), one fresh database per test. `initdb` and `postgres` refuse to run as
root, so as root they run as the `postgres` user (`runuser`); the Makefile installs the package when missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.support_http import free_port


def _pg_bin() -> Path:
    """The newest installed server's binaries (Debian keeps each major version under /usr/lib/postgresql)."""
    if os.environ.get("ARTIFACT_MCP_TEST_PG_BIN"):
        return Path(os.environ["ARTIFACT_MCP_TEST_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


def _as_owner() -> dict[str, str]:
    """Popen arguments that run a command as `postgres` when we are root (as `runuser -u postgres` would, but the
    child is the server itself, so a signal to it reaches postgres and not a wrapper that drops it)."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


class PostgresServer:
    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def new_database(self) -> str:
        """A fresh, empty database on this server; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        with open(self.root / "postgres.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(PG_BIN / "postgres"), "-D", str(self.root / "data"), "-p", str(self.port), "-k", str(self.root),
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=300"],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.root, **_as_owner())
        _wait_ready(self, time.monotonic() + 60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # "fast" shutdown: SIGTERM's "smart" one waits for clients
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def _wait_ready(server: PostgresServer, deadline: float) -> None:
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.proc is not None and server.proc.poll() is not None:
            log = (server.root / "postgres.log").read_text(errors="replace")
            raise AssertionError(f"postgres exited with {server.proc.returncode}:\n{log[-3000:]}")
        try:
            with psycopg.connect(server.url(), connect_timeout=2):
                return
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(0.1)
    raise AssertionError(f"postgres on port {server.port} did not accept connections: {last}")


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    assert (PG_BIN / "initdb").exists(), f"{PG_BIN}/initdb is missing: `make test` installs Debian's postgresql"
    root = Path(tempfile.mkdtemp(prefix="artifact-mcp-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    done = subprocess.run([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                           "--no-sync", "--no-instructions"], capture_output=True, text=True, timeout=120,
                          cwd=root, **_as_owner())
    assert done.returncode == 0, done.stderr
    if os.geteuid() == 0:
        (root / "postgres.log").touch()
        shutil.chown(root / "postgres.log", "postgres", "postgres")
    server = PostgresServer(root, free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
