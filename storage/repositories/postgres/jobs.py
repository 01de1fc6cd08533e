"""The `jobs` table on PostgreSQL: durable state of the index and generation jobs, shared by every replica.

Concurrency is the database's: a claim takes due rows with `FOR UPDATE SKIP LOCKED` (replicas claiming at the
same moment get disjoint jobs, and none waits for another) and holds each under a lease (`lease_until`, with the
claiming process in `claimed_by`). Every process renews its own leases (`heartbeat`, every third of a lease) and
puts lapsed ones back in the queue: a replica killed holding jobs loses them to another within one lease, and a
live replica's running jobs are never touched. A process that closes requeues its own at once (`release`).
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from artifact_mcp.storage.ids import new_job_id
from artifact_mcp.storage.models import Job, Scope
from artifact_mcp.storage.repositories import rows
from artifact_mcp.storage.repositories.postgres.connections import Connections
from artifact_mcp.storage.repositories.rows import ArtifactRef, ArtifactRow, ClaimedJob, JobTally

# How long a claim holds a job without a renewal: what a killed replica's jobs wait before another takes them.
LEASE = timedelta(seconds=30)


class PostgresJobs:
    def __init__(self, db: Connections, lease: timedelta = LEASE) -> None:
        self._db = db
        self.lease: timedelta | None = lease
        self.instance = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @property
    def _lease(self) -> timedelta:
        assert self.lease is not None
        return self.lease

    def enqueue(self, artifact: ArtifactRef | ArtifactRow, now: datetime, job_type: str = "index") -> str:
        job_id = new_job_id()
        self._db.run(
            "INSERT INTO jobs (job_id, artifact_id, type, status, attempts, created_at, next_run_at, org_id, "
            "workspace_id, namespace_id) VALUES (%s, %s, %s, 'queued', 0, %s, %s, %s, %s, %s)",
            [job_id, artifact.artifact_id, job_type, now, now, artifact.org_id, artifact.workspace_id,
             artifact.namespace_id],
        )
        return job_id

    def recover(self, now: datetime) -> int:
        """Requeue running jobs whose lease lapsed (their replica died or lost the database)."""
        return self._db.run(
            "UPDATE jobs SET status = 'queued', next_run_at = %s, lease_until = NULL "
            "WHERE status = 'running' AND (lease_until IS NULL OR lease_until <= %s)", [now, now])

    def claim(self, now: datetime, limit: int, types: tuple[str, ...]) -> list[ClaimedJob]:
        """Up to `limit` due jobs of these types, oldest first, marked running under a lease: at most one per
        artifact version, and none of a version another replica is working on."""
        rows = self._db.all(
            "WITH due AS ("
            "  SELECT DISTINCT ON (artifact_id) job_id, next_run_at, created_at FROM jobs q "
            "  WHERE status IN ('queued', 'retrying') AND next_run_at <= %s AND type = ANY(%s) "
            "  AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.artifact_id = q.artifact_id AND r.status = 'running' "
            "                  AND r.lease_until > %s) "
            "  ORDER BY artifact_id, next_run_at, created_at, job_id), "
            # The status is checked again on the locked row: a job another replica claimed and committed after
            # this statement's snapshot is skipped, not claimed twice.
            "picked AS (SELECT j.job_id FROM jobs j JOIN due USING (job_id) "
            "  WHERE j.status IN ('queued', 'retrying') ORDER BY due.next_run_at, due.created_at LIMIT %s "
            "  FOR UPDATE OF j SKIP LOCKED) "
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = %s, lease_until = %s, "
            "claimed_by = %s WHERE job_id IN (SELECT job_id FROM picked) RETURNING job_id, artifact_id, type, attempts",
            [now, list(types), now, limit, now, now + self._lease, self.instance],
        )
        return [ClaimedJob(*r) for r in rows]

    def next_due(self, types: tuple[str, ...]) -> datetime | None:
        row = self._db.one(
            "SELECT min(next_run_at) FROM jobs WHERE status IN ('queued', 'retrying') AND type = ANY(%s)",
            [list(types)])
        return row[0] if row else None

    def succeed(self, job_id: str, now: datetime) -> None:
        self.succeed_many([job_id], now)

    def succeed_many(self, job_ids: list[str], now: datetime) -> None:
        if job_ids:
            self._db.run("UPDATE jobs SET status = 'succeeded', error = NULL, ended_at = %s, lease_until = NULL "
                         "WHERE job_id = ANY(%s)", [now, list(job_ids)])

    def cancel(self, job_id: str, now: datetime, reason: str) -> None:
        self._db.run("UPDATE jobs SET status = 'cancelled', error = %s, ended_at = %s, lease_until = NULL "
                     "WHERE job_id = %s", [reason, now, job_id])

    def give_up(self, job_id: str, error: str, now: datetime) -> None:
        self._db.run("UPDATE jobs SET status = 'failed', error = %s, ended_at = %s, lease_until = NULL "
                     "WHERE job_id = %s", [error, now, job_id])

    def retry(self, job_id: str, error: str, next_run_at: datetime) -> None:
        self._db.run("UPDATE jobs SET status = 'retrying', error = %s, next_run_at = %s, lease_until = NULL "
                     "WHERE job_id = %s", [error, next_run_at, job_id])

    def is_running(self, job_id: str) -> bool:
        return bool(self.running([job_id]))

    def running(self, job_ids: list[str]) -> set[str]:
        """Which of these jobs are still running under this replica's claim: a replica that stalled past its
        lease finds the job taken over (claimed by another) and drops its own outcome instead of writing it too."""
        if not job_ids:
            return set()
        return {r[0] for r in self._db.all(
            "SELECT job_id FROM jobs WHERE job_id = ANY(%s) AND status = 'running' AND claimed_by = %s",
            [list(job_ids), self.instance])}

    def cancel_open(self, artifact_ids: list[str]) -> None:
        self._db.run(
            "UPDATE jobs SET status = 'cancelled', error = 'artifact version replaced or deleted' "
            "WHERE artifact_id = ANY(%s) AND status IN ('queued', 'retrying')", [list(artifact_ids)])

    def cancel_types(self, types: tuple[str, ...], reason: str, now: datetime) -> None:
        self._db.run(
            "UPDATE jobs SET status = 'cancelled', error = %s, ended_at = %s, lease_until = NULL "
            "WHERE status IN ('queued', 'retrying', 'running') AND type = ANY(%s)", [reason, now, list(types)])

    def delete_for(self, artifact_ids: list[str]) -> None:
        self._db.run("DELETE FROM jobs WHERE artifact_id = ANY(%s)", [list(artifact_ids)])

    def heartbeat(self, now: datetime) -> int:
        with self._db.transaction():
            self._db.run("UPDATE jobs SET lease_until = %s WHERE status = 'running' AND claimed_by = %s",
                         [now + self._lease, self.instance])
            return self.recover(now)

    def release(self, now: datetime) -> int:
        return self._db.run("UPDATE jobs SET status = 'queued', next_run_at = %s, lease_until = NULL "
                            "WHERE status = 'running' AND claimed_by = %s", [now, self.instance])

    def for_artifacts(self, artifact_ids: list[str]) -> list[Job]:
        found = self._db.all(
            f"SELECT {', '.join(rows.JOB_COLUMNS)} FROM jobs WHERE artifact_id = ANY(%s) "
            "ORDER BY created_at DESC, job_id",
            [list(artifact_ids)])
        return rows.jobs_from_rows(found)

    def tally(self, scope: Scope) -> JobTally:
        row = self._db.one(
            "SELECT count(*) FILTER (WHERE status IN ('queued', 'retrying')), "
            "count(*) FILTER (WHERE status = 'running'), count(*) FILTER (WHERE status = 'failed'), "
            "min(created_at) FILTER (WHERE status IN ('queued', 'retrying')) "
            "FROM jobs WHERE org_id = %s AND workspace_id = %s AND namespace_id = %s",
            [scope.org_id, scope.workspace_id, scope.namespace_id])
        pending, running, failed, oldest = row or (0, 0, 0, None)
        return JobTally(pending=int(pending), running=int(running), failed=int(failed), oldest_pending_at=oldest)

