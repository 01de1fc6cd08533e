"""Background jobs: the `jobs` table (durable state) and the runner that works through it.

A job row is written in the transaction that creates its artifact version, so no committed artifact is
ever without its indexing job. The runner (started in the store owner's task group) claims due jobs in
batches, does the slow part (text extraction, chunking, embedding) outside the store lock, and commits
the chunks, the artifact's index fields and the job's outcome in one transaction. Failures retry with
exponential backoff; a job found `running` when a store is opened was cut short by a crash or a kill and
is queued again, so a restart finishes it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import anyio
import duckdb

from artifact_mcp.storage.models import Job

log = logging.getLogger(__name__)

JOB_COLUMNS = ("job_id", "artifact_id", "type", "status", "attempts", "error", "created_at", "started_at",
               "ended_at", "next_run_at")


# Job types by runner: the index runner and the generation runner each claim only their own.
INDEX_JOB_TYPES = ("index", "reindex")
GENERATE_JOB_TYPES = ("generate_summary", "generate_report", "generate_transcript", "generate_digest")


def new_job_id() -> str:
    return f"job_{uuid.uuid4().hex}"


class JobQueue:
    """SQL over the `jobs` table. The caller holds the store lock and owns transactions."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, max_attempts: int = 5, backoff_seconds: float = 1.0,
                 max_backoff_seconds: float = 300.0) -> None:
        self._con = con
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds

    def enqueue(self, artifact: dict[str, Any], now: datetime, job_type: str = "index") -> str:
        job_id = new_job_id()
        self._con.execute(
            "INSERT INTO jobs (job_id, artifact_id, type, status, attempts, created_at, next_run_at, org_id, "
            "workspace_id, namespace_id) VALUES (?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?)",
            [job_id, artifact["artifact_id"], job_type, now, now, artifact["org_id"], artifact["workspace_id"],
             artifact["namespace_id"]],
        )
        return job_id

    def recover(self, now: datetime) -> int:
        """Requeue jobs a dead process left `running`."""
        rows = self._con.execute(
            "UPDATE jobs SET status = 'queued', next_run_at = ? WHERE status = 'running' RETURNING job_id", [now]
        ).fetchall()
        return len(rows)

    def claim(self, now: datetime, limit: int, types: tuple[str, ...] = INDEX_JOB_TYPES) -> list[dict[str, Any]]:
        """Mark up to `limit` due jobs of these types running (oldest first) and return them."""
        rows = self._con.execute(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ? "
            "WHERE job_id IN (SELECT job_id FROM jobs WHERE status IN ('queued', 'retrying') AND next_run_at <= ? "
            "AND list_contains(?, type) ORDER BY next_run_at, created_at LIMIT ?) "
            "RETURNING job_id, artifact_id, type, attempts",
            [now, now, list(types), limit],
        ).fetchall()
        return [{"job_id": r[0], "artifact_id": r[1], "type": r[2], "attempts": r[3]} for r in rows]

    def next_due(self, types: tuple[str, ...] = INDEX_JOB_TYPES) -> datetime | None:
        row = self._con.execute(
            "SELECT min(next_run_at) FROM jobs WHERE status IN ('queued', 'retrying') AND list_contains(?, type)",
            [list(types)],
        ).fetchone()
        return row[0] if row else None

    def succeed(self, job_id: str, now: datetime) -> None:
        self._con.execute(
            "UPDATE jobs SET status = 'succeeded', error = NULL, ended_at = ? WHERE job_id = ?", [now, job_id]
        )

    def cancel(self, job_id: str, now: datetime, reason: str) -> None:
        self._con.execute(
            "UPDATE jobs SET status = 'cancelled', error = ?, ended_at = ? WHERE job_id = ?", [reason, now, job_id]
        )

    def fail(self, job_id: str, attempts: int, error: str, now: datetime) -> bool:
        """Record a failed attempt. True when the job will be retried, False when it gave up."""
        if attempts >= self.max_attempts:
            self._con.execute(
                "UPDATE jobs SET status = 'failed', error = ?, ended_at = ? WHERE job_id = ?", [error, now, job_id]
            )
            return False
        delay = min(self.backoff_seconds * 2 ** (attempts - 1), self.max_backoff_seconds)
        self._con.execute(
            "UPDATE jobs SET status = 'retrying', error = ?, next_run_at = ? WHERE job_id = ?",
            [error, now + timedelta(seconds=delay), job_id],
        )
        return True

    def is_running(self, job_id: str) -> bool:
        row = self._con.execute("SELECT status FROM jobs WHERE job_id = ?", [job_id]).fetchone()
        return bool(row) and row[0] == "running"

    def cancel_open(self, artifact_ids: list[str]) -> None:
        """Cancel the open jobs of these artifact versions (they were replaced or deleted)."""
        self._con.execute(
            "UPDATE jobs SET status = 'cancelled', error = 'artifact version replaced or deleted' "
            "WHERE list_contains(?, artifact_id) AND status IN ('queued', 'retrying')",
            [artifact_ids],
        )

    def delete_for(self, artifact_ids: list[str]) -> None:
        self._con.execute("DELETE FROM jobs WHERE list_contains(?, artifact_id)", [artifact_ids])

    def for_artifacts(self, artifact_ids: list[str]) -> list[Job]:
        rows = self._con.execute(
            f"SELECT {', '.join(JOB_COLUMNS)} FROM jobs WHERE list_contains(?, artifact_id) "
            "ORDER BY created_at DESC, job_id",
            [artifact_ids],
        ).fetchall()
        jobs = []
        for r in rows:
            job = dict(zip(JOB_COLUMNS, r, strict=True))
            if job["status"] not in ("queued", "retrying"):
                job["next_run_at"] = None
            jobs.append(Job(**job))
        return jobs


class JobRunner:
    """Works through due jobs until cancelled. `work` processes one claimed batch (in a worker thread);
    `wake()` is called after writes that enqueue jobs, so they start at once instead of at the next poll."""

    def __init__(self, work: Callable[[], Awaitable[float | None]], *, poll_seconds: float = 1.0) -> None:
        self._work = work
        self._poll = poll_seconds
        self._wake = anyio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake = anyio.Event()
            try:
                wait = await self._work()
            except Exception:
                log.exception("index job batch failed unexpectedly; will retry")
                wait = self._poll
            if wait == 0:
                continue  # more work is due now
            with anyio.move_on_after(self._poll if wait is None else min(wait, self._poll)):
                await self._wake.wait()
