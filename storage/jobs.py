"""Background jobs: their types and retry policy (the durable state is the job repository's).

A job row is written in the transaction that creates its artifact version, so no committed artifact is
ever without its indexing job. The runners (`ownership/workers.py`, in the store owner's task group) claim due
jobs in batches, do the slow part (text extraction, chunking, embedding) outside the store lock, and commit
the chunks, the artifact's index fields and the job's outcome in one transaction. Failures retry with
exponential backoff; a job found `running` when a store is opened was cut short by a crash or a kill and
is queued again, so a restart finishes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from artifact_mcp.storage.repositories.protocols import JobRepository

# Job types by runner: the index runner and the generation runner each claim only their own.
INDEX_JOB_TYPES = ("index", "reindex")
GENERATE_JOB_TYPES = ("generate_summary", "generate_report", "generate_transcript", "generate_digest")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 300.0

    def fail(self, jobs: JobRepository, job_id: str, attempts: int, error: str, now: datetime) -> bool:
        """Record a failed attempt. True when the job will be retried, False when it gave up."""
        if attempts >= self.max_attempts:
            jobs.give_up(job_id, error, now)
            return False
        delay = min(self.backoff_seconds * 2 ** (attempts - 1), self.max_backoff_seconds)
        jobs.retry(job_id, error, now + timedelta(seconds=delay))
        return True
