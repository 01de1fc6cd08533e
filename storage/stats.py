"""The figures of one tenant's store: what `store_stats` (storage/usecases/stats.py) returns."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class StoreStats(BaseModel):
    """Counts over the latest, unexpired version of every artifact in a scope, plus its storage and jobs."""

    artifacts: int = Field(description="Artifacts (latest versions, not expired).")
    by_type: dict[str, int] = Field(description="Artifacts by artifact_type.")
    by_status: dict[str, int] = Field(description="Artifacts by status.")
    versions: int = Field(description="Versions of every artifact, older ones and expired ones included.")
    content_bytes: int = Field(description="Sum of every version's size (text and files), duplicates counted.")
    blobs: int = Field(description="Distinct file blobs the versions reference (identical bytes are stored once).")
    blob_bytes: int = Field(description="Bytes those distinct blobs take in the blob store.")
    jobs_pending: int = Field(description="Background jobs waiting to run (queued or retrying).")
    jobs_running: int = Field(description="Background jobs running now.")
    jobs_failed: int = Field(description="Background jobs that gave up after their retries.")
    oldest_pending_at: datetime | None = Field(None, description="When the oldest waiting job was queued (UTC).")
    oldest_pending_seconds: float | None = Field(None, description="How long the oldest waiting job has waited.")
