"""The repository interfaces: one small `typing.Protocol` per table family.

Services depend on these only; `repositories/duckdb/` implements them for the embedded catalog, and a second
backend (PostgreSQL) implements the same and nothing else. Every method runs inside the caller's transaction
(`Repositories.transaction()`) when there is one; the caller (the store, under its lock) decides what is one
transaction. Rows cross the boundary as the typed rows of `rows.py`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np

from artifact_mcp.storage.cursor import Position
from artifact_mcp.storage.models import ChangeEvent, Job, ListQuery, Scope, ThreadSummary
from artifact_mcp.storage.repositories.chunk_filters import ChunkFilters
from artifact_mcp.storage.repositories.rows import (
    ArtifactRef,
    ArtifactRow,
    ArtifactTally,
    ChunkChange,
    ChunkHit,
    ChunkText,
    ChunkVector,
    ClaimedJob,
    GenerationRow,
    IdempotencyRow,
    JobTally,
    SourceRow,
)


class DuplicateKey(Exception):
    """An insert hit an existing primary key (the backend's constraint error, translated)."""


class ArtifactRepository(Protocol):
    def insert(self, row: ArtifactRow) -> None:
        """Raises DuplicateKey when the artifact id exists."""
    def update(self, artifact_id: str, changes: Mapping[str, Any]) -> None:
        """Set these columns (names from rows.ARTIFACT_COLUMNS; KeyError for others)."""
    def update_many(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        """`update` of many rows (artifact id -> its changes) in as few statements as their column sets allow."""
    def get(self, artifact_id: str, now: datetime) -> ArtifactRow | None: ...
    def get_many(self, artifact_ids: Sequence[str], now: datetime, *,
                 with_content: bool = False) -> dict[str, ArtifactRow]:
        """Rows by id, without content_text unless `with_content`."""
    def fields_of(self, artifact_ids: Sequence[str], columns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """These columns (names from rows.ARTIFACT_COLUMNS) of these rows, by id."""
    def versions(self, root_artifact_id: str, now: datetime) -> list[ArtifactRow]:
        """Every version, oldest first, without content_text."""
    def latest(self, root_artifact_id: str, now: datetime) -> ArtifactRow | None: ...
    def delete(self, artifact_ids: Sequence[str]) -> None: ...
    def lock(self, artifact_ids: Sequence[str]) -> None:
        """Hold these rows against other transactions until the caller's commits. Every write that touches an
        artifact's rows takes them before its job, chunk and posting rows, so concurrent writers queue instead
        of deadlocking (a no-op where one process's lock already serializes writers)."""
    def list(self, scope: Scope, query: ListQuery, after: Position | None,
             now: datetime) -> tuple[list[ArtifactRow], int]:
        """One page (newest first, `query.limit + 1` rows to tell if there is more) and the total."""
    def expired(self, now: datetime, limit: int = 1000) -> list[tuple[str, str]]:
        """(artifact_id, root_artifact_id) of expired versions."""
    def referenced_blob_keys(self, keys: Sequence[str] | None = None) -> set[str]: ...
    def count(self) -> int: ...
    def thread_material(self, scope: Scope, thread_id: str, now: datetime, limit: int) -> list[str]:
        """The thread's latest, unexpired, non-generated versions, oldest first."""
    def threads(self, scope: Scope, now: datetime, limit: int) -> list[ThreadSummary]:
        """The scope's threads (over latest, unexpired versions), most recently written first."""
    def latest_refs(self) -> list[ArtifactRef]: ...
    def reset_index_of_latest(self) -> None:
        """Mark every latest version not indexed (its chunks are gone)."""
    def archive_ids(self, scope: Scope) -> list[str]:
        """Every version's id in the scope, oldest first."""
    def latest_by_metadata(self, scope: Scope, key: str, values: Sequence[str],
                           thread_id: str | None) -> dict[str, ArtifactRow]:
        """Latest versions in the scope and thread whose metadata `key` (top level) is one of `values`, by value."""
    def tally(self, scope: Scope, now: datetime) -> ArtifactTally:
        """The scope's latest unexpired versions by type and status, all its versions, their bytes and blobs."""


class JobRepository(Protocol):
    lease: timedelta | None
    """How long a claim holds a job unless renewed (`heartbeat`); None where one process owns the catalog."""

    def enqueue(self, artifact: ArtifactRef | ArtifactRow, now: datetime, job_type: str = "index") -> str: ...
    def recover(self, now: datetime) -> int:
        """Requeue jobs a dead process left `running`; how many."""
    def claim(self, now: datetime, limit: int, types: tuple[str, ...]) -> list[ClaimedJob]: ...
    def next_due(self, types: tuple[str, ...]) -> datetime | None: ...
    def succeed(self, job_id: str, now: datetime) -> None: ...
    def succeed_many(self, job_ids: list[str], now: datetime) -> None: ...
    def cancel(self, job_id: str, now: datetime, reason: str) -> None: ...
    def give_up(self, job_id: str, error: str, now: datetime) -> None: ...
    def retry(self, job_id: str, error: str, next_run_at: datetime) -> None: ...
    def is_running(self, job_id: str) -> bool: ...
    def running(self, job_ids: list[str]) -> set[str]:
        """Which of these jobs are still running under this process's claim (on a shared catalog a lapsed claim
        may have passed to another replica: its outcome is then that replica's to write)."""
    def cancel_open(self, artifact_ids: list[str]) -> None: ...
    def cancel_types(self, types: tuple[str, ...], reason: str, now: datetime) -> None:
        """Cancel every open (queued, retrying, running) job of these types."""
    def delete_for(self, artifact_ids: list[str]) -> None: ...
    def for_artifacts(self, artifact_ids: list[str]) -> list[Job]: ...
    def heartbeat(self, now: datetime) -> int:
        """Renew this process's claims, and requeue claims whose holder stopped renewing them; how many."""
    def release(self, now: datetime) -> int:
        """Requeue the jobs this process holds (it is closing); how many."""
    def tally(self, scope: Scope) -> JobTally:
        """The scope's jobs waiting, running and failed, and when the oldest waiting one was queued."""


class ChunkRepository(Protocol):
    """Chunks and their embeddings (vectors), beside the artifact rows."""

    dim: int

    @property
    def client(self) -> Any:
        """The backend's connection (DuckDB) or pool (PostgreSQL)."""
    def ensure_column(self) -> bool:
        """Make the embedding column `dim` wide; True when it had to be (re)created (every chunk is gone)."""
    def add_rows(self, columns: Mapping[str, Sequence[Any]], vectors: np.ndarray) -> None:
        """Insert chunks given column by column (rows.CHUNK_COLUMNS) with their (n, dim) vectors."""
    def delete_many(self, artifact_ids: list[str]) -> int: ...
    def clear(self) -> None: ...
    def set_fields(self, artifact_ids: list[str], fields: Mapping[str, Any]) -> None: ...
    def has_chunks(self, artifact_id: str) -> bool: ...
    def with_chunks(self, artifact_ids: list[str]) -> set[str]:
        """Which of these versions have chunks."""
    def next_seqs(self, n: int) -> list[int]: ...
    def texts(self, seqs: list[int]) -> dict[int, ChunkText]: ...
    def nearest(self, embedding: Sequence[float], filters: ChunkFilters | None, top_k: int) -> list[ChunkHit]:
        """The `top_k` chunks `filters` admit, by inner product with `embedding` (the LlamaIndex query)."""
    def eligible_seqs(self, filters: ChunkFilters) -> np.ndarray: ...
    def eligible_expiry(self, filters: ChunkFilters) -> tuple[np.ndarray, np.ndarray]:
        """(seqs, expires_at in µs since the epoch, int64 max for never) of every chunk `filters` admit."""
    def note_foreign_change(self) -> None:
        """Another process changed chunks (a shared catalog's feed says so): bump `changes`."""
    @property
    def changes(self) -> int:
        """Bumped by every write: what the reads above returned is current while this is unchanged."""
    def count(self) -> int: ...
    def embedding_batches(self) -> Iterator[dict[str, np.ndarray]]:
        """All chunks' `seq`, `n_terms`, `artifact_id`, `embedding`, in seq order, in slices."""


class PostingRepository(Protocol):
    """BM25 postings `(term hash, chunk seq, tf)`."""

    def add(self, terms: Sequence[int] | np.ndarray, seqs: Sequence[int] | np.ndarray,
            tfs: Sequence[int] | np.ndarray) -> None: ...
    def delete_artifacts(self, artifact_ids: list[str]) -> None: ...
    def clear(self) -> None: ...
    def all(self) -> dict[str, np.ndarray]:
        """Every posting as arrays `term`, `seq`, `tf`, ordered by term then seq."""


class SourceRepository(Protocol):
    def get(self, source_id: str) -> SourceRow | None: ...
    def insert(self, row: SourceRow) -> None: ...
    def delete_for_root(self, root_artifact_id: str) -> None: ...


class GenerationRepository(Protocol):
    def insert(self, row: GenerationRow) -> None: ...
    def get(self, artifact_id: str) -> GenerationRow | None: ...
    def delete_for(self, artifact_ids: list[str]) -> None: ...


class IdempotencyRepository(Protocol):
    def find(self, principal_id: str, key: str, now: datetime) -> IdempotencyRow | None:
        """The unexpired key."""
    def insert(self, row: IdempotencyRow) -> None: ...
    def delete(self, principal_id: str, key: str) -> None: ...
    def delete_lapsed(self, now: datetime) -> None: ...


class SettingsRepository(Protocol):
    def secret(self, key: str) -> bytes:
        """A random secret persisted with the catalog (created on first use)."""
    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str) -> None: ...


class ChangeFeed(Protocol):
    """What other processes wrote to the chunks of a shared catalog (PostgreSQL), for the search cache to follow."""

    def start(self) -> None:
        """Follow from now on."""
    def read(self, limit: int = 500) -> list[ChunkChange]:
        """Changes other processes committed since the last read, oldest first."""
    def chunk_rows(self, seqs: list[int]) -> list[ChunkVector]: ...
    def postings_of(self, seqs: list[int]) -> list[tuple[int, int, int]]:
        """(seq, term, tf) of these chunks."""
    def wait(self, timeout: float) -> bool:
        """Block until a change is announced or `timeout` passes; True if one was."""
    def publish(self, event: ChangeEvent) -> None:
        """Announce a change made here (a resource or list change) to the other processes."""
    def take_events(self) -> list[ChangeEvent]:
        """The changes other processes announced, received while waiting, oldest first; cleared."""
    def close(self) -> None: ...


class Repositories(Protocol):
    """One backend's repositories over one database, and its transactions."""

    artifacts: ArtifactRepository
    jobs: JobRepository
    chunks: ChunkRepository
    postings: PostingRepository
    sources: SourceRepository
    generations: GenerationRepository
    idempotency: IdempotencyRepository
    settings: SettingsRepository
    feed: ChangeFeed | None  # None: one process owns the catalog, and so writes everything its cache follows

    def transaction(self) -> AbstractContextManager[None]: ...
    def schema_version(self) -> int: ...
    def close(self) -> None: ...
