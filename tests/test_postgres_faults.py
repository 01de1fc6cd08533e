"""Faults on the PostgreSQL catalog: the database restarting under load, a replica killed holding jobs.

Errors only while the database is down (503, never a 500 or a hang), none once it is back, nothing acknowledged
lost; a killed replica's claimed jobs are finished by another within a lease."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from tests.conftest import TEST_EMBEDDING, server_env
from tests.support_http import free_port, serve_http, server_command, stop, wait_for_port
from tests.support_postgres import postgres_server

NS = "/v1/orgs/default/workspaces/default/namespaces/default"


def _create(client: httpx.Client, i: int) -> httpx.Response:
    return client.post(f"{NS}/artifacts", json={"name": f"doc {i}", "content": f"entry number {i}"})


def test_a_database_restart_under_load_gives_errors_only_while_it_is_down(tmp_path: Path) -> None:
    with postgres_server() as pg:
        url = pg.new_database()
        with serve_http(tmp_path / "replica", "--catalog", url, "--auth", "none", "--embedding-model",
                        TEST_EMBEDDING) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            acked: list[str] = []
            for i in range(10):
                r = _create(c, i)
                assert r.status_code == 201, r.text
                acked.append(r.json()["artifact_id"])
            pg.stop()
            down = [_create(c, 100 + i) for i in range(2)]
            assert {r.status_code for r in down} == {503}, [r.text for r in down]
            assert "unreachable" in down[0].json()["detail"]
            assert c.get("/readyz").status_code == 503
            pg.start()
            statuses = []
            for i in range(20):
                r = _create(c, 200 + i)
                statuses.append(r.status_code)
                if r.status_code == 201:
                    acked.append(r.json()["artifact_id"])
            assert statuses == [201] * 20, statuses  # back at once: no stale pooled connection fails a request
            assert c.get("/readyz").status_code == 200
            for aid in acked:
                assert c.get(f"{NS}/artifacts/{aid}").status_code == 200, aid


# A short lease: the survivor takes the killed replica's jobs over within seconds, not the default 30.
LEASE_SECONDS = 5


def _spawn(data_dir: Path, url: str, port: int, blobs: str) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [server_command(), "serve", "--transport", "http", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(data_dir), "--catalog", url, "--blob-url", blobs, "--auth", "none"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(data_dir / "stderr.log", "wb"),
        env=server_env(ARTIFACT_MCP_EMBEDDING_MODEL=TEST_EMBEDDING, ARTIFACT_MCP_JOB_LEASE_SECONDS=str(LEASE_SECONDS)),
        start_new_session=True)


def test_a_killed_replicas_jobs_are_finished_by_another(postgres: Any, tmp_path: Path) -> None:
    url = postgres.new_database()
    blobs = (tmp_path / "blobs").resolve().as_uri()
    port = free_port()
    victim = _spawn(tmp_path / "victim", url, port, blobs)
    try:
        assert wait_for_port(victim, port, time.monotonic() + 60)
        long = " ".join(f"word{k} entry" for k in range(6000))  # ~70 KB: preparing a batch takes a while
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            ids = []
            for i in range(20):
                r = c.post(f"{NS}/artifacts", json={"name": f"doc {i}", "content": f"{long} {i}"})
                assert r.status_code == 201, r.text
                ids.append(r.json()["artifact_id"])
        os.killpg(victim.pid, signal.SIGKILL)  # the replica and its index child, holding a claimed batch
        victim.wait(timeout=10)
    finally:
        stop(victim)
    with psycopg.connect(url) as con:
        held = [r[0] for r in con.execute("SELECT job_id FROM jobs WHERE status = 'running'").fetchall()]
        lapses = con.execute("SELECT max(lease_until) FROM jobs WHERE status = 'running'").fetchone()[0]
    assert held, "the replica was killed holding no job: nothing to take over"
    # ARTIFACT_MCP_JOB_LEASE_SECONDS set the claims' lease (the default is 30 s): renewed until the kill, no longer.
    assert lapses - datetime.now(UTC).replace(tzinfo=None) <= timedelta(seconds=LEASE_SECONDS)
    with serve_http(tmp_path / "survivor", "--catalog", url, "--blob-url", blobs, "--auth", "none",
                    "--embedding-model", TEST_EMBEDDING, "--job-lease-seconds", str(LEASE_SECONDS)) as port2, \
            httpx.Client(base_url=f"http://127.0.0.1:{port2}", timeout=60) as c:
        # Every acknowledged write is there; its job is done here, at the latest once the dead one's lease lapses.
        deadline = time.monotonic() + 90
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            pending = {a for a in pending if not c.get(f"{NS}/artifacts/{a}").json()["is_indexed"]}
            time.sleep(0.5)
        assert not pending, f"{len(pending)} of {len(ids)} never indexed"
    with psycopg.connect(url) as con:
        done = dict(con.execute("SELECT job_id, status FROM jobs WHERE job_id = ANY(%s)", [held]).fetchall())
    assert set(done.values()) == {"succeeded"}, done


def test_a_stalled_replica_finds_its_lapsed_claim_taken_over(postgres: Any) -> None:
    """A replica that stalls past its lease (a long pause, not a death) must not write the outcome of a job
    another replica has taken over: its holder checks (`jobs.running`) say the job is no longer its own."""
    from datetime import timedelta

    from artifact_mcp.storage.clock import utcnow
    from artifact_mcp.storage.repositories.postgres.database import PostgresRepositories
    from artifact_mcp.storage.repositories.rows import ArtifactRef

    url = postgres.new_database()
    stalled, other = PostgresRepositories(url, max_size=2), PostgresRepositories(url, max_size=2)
    try:
        now = utcnow()
        job_id = stalled.jobs.enqueue(ArtifactRef("art_stall", "default", "default", "default"), now)
        [claimed] = stalled.jobs.claim(now, 10, ("index",))
        assert claimed.job_id == job_id
        assert stalled.jobs.running([job_id]) == {job_id} and other.jobs.running([job_id]) == set()
        assert other.jobs.claim(now, 10, ("index",)) == []  # a live claim is nobody else's

        assert stalled.jobs.lease is not None
        later = now + stalled.jobs.lease + timedelta(seconds=1)
        assert other.jobs.heartbeat(later) == 1  # the lapsed lease is requeued ...
        [again] = other.jobs.claim(later, 10, ("index",))  # ... and taken over
        assert (again.job_id, again.attempts) == (job_id, 2)
        assert other.jobs.running([job_id]) == {job_id} and other.jobs.is_running(job_id)
        # The stalled replica wakes up: the job is not its own any more, and its heartbeat does not take it back.
        assert stalled.jobs.running([job_id]) == set() and not stalled.jobs.is_running(job_id)
        stalled.jobs.heartbeat(later)
        assert other.jobs.running([job_id]) == {job_id} and stalled.jobs.running([job_id]) == set()
    finally:
        stalled.close()
        other.close()
