"""The `jobs` table on DuckDB: durable state of the index and generation jobs."""

from __future__ import annotations

from datetime import datetime

import duckdb

from artifact_mcp.storage.ids import new_job_id
from artifact_mcp.storage.models import Job, Scope
from artifact_mcp.storage.repositories import rows
from artifact_mcp.storage.repositories.rows import ArtifactRef, ArtifactRow, ClaimedJob, JobTally


class DuckDBJobs:
    """SQL over the `jobs` table. The caller holds the store lock and owns transactions."""

    # One process owns the file: the next owner requeues whatever it left running (`recover`), so no claim needs
    # a lease, a heartbeat or a release.
    lease = None

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def enqueue(self, artifact: ArtifactRef | ArtifactRow, now: datetime, job_type: str = "index") -> str:
        job_id = new_job_id()
        self._con.execute(
            "INSERT INTO jobs (job_id, artifact_id, type, status, attempts, created_at, next_run_at, org_id, "
            "workspace_id, namespace_id) VALUES (?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?)",
            [job_id, artifact.artifact_id, job_type, now, now, artifact.org_id, artifact.workspace_id,
             artifact.namespace_id],
        )
        return job_id

    def recover(self, now: datetime) -> int:
        """Requeue jobs a dead process left `running`."""
        rows = self._con.execute(
            "UPDATE jobs SET status = 'queued', next_run_at = ? WHERE status = 'running' RETURNING job_id", [now]
        ).fetchall()
        return len(rows)

    def claim(self, now: datetime, limit: int, types: tuple[str, ...]) -> list[ClaimedJob]:
        """Mark up to `limit` due jobs of these types running (oldest first) and return them: at most one per
        artifact version, so a batch never works on one version twice (a later job of it waits for the next)."""
        rows = self._con.execute(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ? "
            "WHERE job_id IN (SELECT job_id FROM jobs WHERE status IN ('queued', 'retrying') AND next_run_at <= ? "
            "AND list_contains(?, type) QUALIFY row_number() OVER (PARTITION BY artifact_id "
            "ORDER BY next_run_at, created_at, job_id) = 1 ORDER BY next_run_at, created_at LIMIT ?) "
            "RETURNING job_id, artifact_id, type, attempts",
            [now, now, list(types), limit],
        ).fetchall()
        return [ClaimedJob(*r) for r in rows]

    def next_due(self, types: tuple[str, ...]) -> datetime | None:
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

    def give_up(self, job_id: str, error: str, now: datetime) -> None:
        self._con.execute(
            "UPDATE jobs SET status = 'failed', error = ?, ended_at = ? WHERE job_id = ?", [error, now, job_id]
        )

    def retry(self, job_id: str, error: str, next_run_at: datetime) -> None:
        self._con.execute(
            "UPDATE jobs SET status = 'retrying', error = ?, next_run_at = ? WHERE job_id = ?",
            [error, next_run_at, job_id],
        )

    def succeed_many(self, job_ids: list[str], now: datetime) -> None:
        if job_ids:
            self._con.execute(
                "UPDATE jobs SET status = 'succeeded', error = NULL, ended_at = ? "
                f"WHERE job_id IN ({', '.join('?' for _ in job_ids)})", [now, *job_ids]
            )

    def is_running(self, job_id: str) -> bool:
        row = self._con.execute("SELECT status FROM jobs WHERE job_id = ?", [job_id]).fetchone()
        return bool(row) and row[0] == "running"

    def running(self, job_ids: list[str]) -> set[str]:
        """Which of these jobs are still running (not cancelled meanwhile)."""
        if not job_ids:
            return set()
        # One placeholder per id: an IN list of parameters uses the primary-key index; list_contains would scan.
        return {r[0] for r in self._con.execute(
            f"SELECT job_id FROM jobs WHERE job_id IN ({', '.join('?' for _ in job_ids)}) AND status = 'running'",
            job_ids,
        ).fetchall()}

    def cancel_open(self, artifact_ids: list[str]) -> None:
        """Cancel the open jobs of these artifact versions (they were replaced or deleted)."""
        self._con.execute(
            "UPDATE jobs SET status = 'cancelled', error = 'artifact version replaced or deleted' "
            "WHERE list_contains(?, artifact_id) AND status IN ('queued', 'retrying')",
            [artifact_ids],
        )

    def cancel_types(self, types: tuple[str, ...], reason: str, now: datetime) -> None:
        self._con.execute(
            "UPDATE jobs SET status = 'cancelled', error = ?, ended_at = ? "
            "WHERE status IN ('queued', 'retrying', 'running') AND list_contains(?, type)",
            [reason, now, list(types)]
        )

    def delete_for(self, artifact_ids: list[str]) -> None:
        self._con.execute("DELETE FROM jobs WHERE list_contains(?, artifact_id)", [artifact_ids])

    def heartbeat(self, now: datetime) -> int:
        return 0

    def release(self, now: datetime) -> int:
        return 0

    def for_artifacts(self, artifact_ids: list[str]) -> list[Job]:
        found = self._con.execute(
            f"SELECT {', '.join(rows.JOB_COLUMNS)} FROM jobs WHERE list_contains(?, artifact_id) "
            "ORDER BY created_at DESC, job_id",
            [artifact_ids],
        ).fetchall()
        return rows.jobs_from_rows(found)

    def tally(self, scope: Scope) -> JobTally:
        pending, running, failed, oldest = self._con.execute(
            "SELECT count(*) FILTER (WHERE status IN ('queued', 'retrying')), "
            "count(*) FILTER (WHERE status = 'running'), count(*) FILTER (WHERE status = 'failed'), "
            "min(created_at) FILTER (WHERE status IN ('queued', 'retrying')) "
            "FROM jobs WHERE org_id = ? AND workspace_id = ? AND namespace_id = ?",
            [scope.org_id, scope.workspace_id, scope.namespace_id],
        ).fetchone()
        return JobTally(pending=int(pending), running=int(running), failed=int(failed), oldest_pending_at=oldest)
