"""Indexing: the index job runner's steps (claim, prepare, commit), matching the stored index to the configured
embedding model, and taking versions out of the index."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from artifact_mcp.storage import content as contentlib
from artifact_mcp.storage.clock import utcnow
from artifact_mcp.storage.errors import Contention, InvalidInput
from artifact_mcp.storage.index.pipeline import Indexer, Prepared, PrepareInput
from artifact_mcp.storage.index.search_cache import SearchCache
from artifact_mcp.storage.jobs import INDEX_JOB_TYPES, RetryPolicy
from artifact_mcp.storage.models import ChangeEvent, Job, Scope
from artifact_mcp.storage.repositories.rows import CHUNK_COLUMNS, ArtifactRow, ClaimedJob
from artifact_mcp.storage.services.context import StoreContext

log = logging.getLogger(__name__)

# A batch's commit rolled back by a shared catalog (a deadlock with another replica's write) is tried again this
# many times in all: its chunks are computed already, and the conflicting write has usually finished.
COMMIT_ATTEMPTS = 3


@dataclass
class IndexTask:
    job: ClaimedJob
    row: ArtifactRow


class IndexingService:
    def __init__(self, ctx: StoreContext, indexer: Indexer, cache: SearchCache, retry: RetryPolicy) -> None:
        self.ctx = ctx
        self.db = ctx.db
        self.indexer = indexer
        self.cache = cache
        self.retry = retry

    def match_model(self) -> None:
        """Match the stored index to the configured model (re-index everything when it changed) and requeue
        jobs a previous process left running."""
        db = self.db
        now = utcnow()
        model_id = self.indexer.model_id
        with self.ctx.lock:
            stored = db.settings.get("embedding_model_id")
            with db.transaction():
                recreated = db.chunks.ensure_column()
                if stored is not None and (stored != model_id or recreated):
                    log.warning("embedding model changed (%s -> %s): re-indexing every artifact", stored, model_id)
                    db.postings.clear()
                    db.chunks.clear()
                    db.jobs.cancel_types(INDEX_JOB_TYPES, "embedding model changed", now)
                    refs = db.artifacts.latest_refs()
                    db.artifacts.reset_index_of_latest()
                    for ref in refs:
                        db.jobs.enqueue(ref, now, "reindex")
                db.settings.set("embedding_model_id", model_id)
                recovered = db.jobs.recover(now)
        if recovered:
            log.info("requeued %d index jobs interrupted by a previous shutdown", recovered)

    def unindex(self, artifact_ids: list[str]) -> None:
        """Remove versions' chunks and postings, and cancel their open jobs (inside the caller's transaction)."""
        self.db.postings.delete_artifacts(artifact_ids)
        removed = self.db.chunks.delete_many(artifact_ids)
        if removed:
            self.cache.note_removed(removed)
        self.db.jobs.cancel_open(artifact_ids)

    def retry_failed(self, scope: Scope, artifact_id: str) -> tuple[Job, ChangeEvent]:
        """Queue a new index job for a version whose last index job failed (its attempts used up): the job starts
        with a fresh attempt count, and the artifact turns 'pending' again."""
        db = self.db
        now = utcnow()
        with self.ctx.lock:
            row = self.ctx.visible_row(scope, artifact_id, now, include_expired=False)
            if not row.is_latest:
                raise InvalidInput(f"{artifact_id} is version {row.version}, not the latest: only the latest version "
                                   "is indexed; re-run the latest version's job")
            last = next((j for j in db.jobs.for_artifacts([row.artifact_id]) if j.type in INDEX_JOB_TYPES), None)
            if last is None or last.status != "failed":
                state = "has no index job" if last is None else f"'s last index job is {last.status}"
                raise InvalidInput(f"nothing to re-run: {artifact_id}{' ' if last is None else ''}{state}, not failed")
            with db.transaction():
                job_id = db.jobs.enqueue(row, now, "index")
                if row.index_owns_status() and row.status == "failed":
                    db.artifacts.update(row.artifact_id, {"status": "pending"})
            job = next(j for j in db.jobs.for_artifacts([row.artifact_id]) if j.job_id == job_id)
        return job, self.ctx.event("updated", row.tenant, row.root_artifact_id, [row.artifact_id])

    # --- the job runner's steps ------------------------------------------------------------------

    def claim_index_jobs(self, limit: int) -> list[IndexTask]:
        """Mark due jobs running, then snapshot their artifact rows: a few statements for the batch (writers wait
        for the store lock meanwhile, so it is held for as few statements as the batch allows).

        Two transactions: the claim holds job rows, and a writer holding an artifact's row waits for its job row
        (`unindex`); taking the artifact rows in the same transaction would deadlock with it. A crash between
        the two leaves the jobs running under a lease that lapses (or a restart requeues them)."""
        db = self.db
        now = utcnow()
        tasks: list[IndexTask] = []
        with self.ctx.lock:
            jobs = db.jobs.claim(now, limit, INDEX_JOB_TYPES)
            if not jobs:
                return tasks
        with self.ctx.lock, db.transaction():
            db.artifacts.lock([job.artifact_id for job in jobs])
            rows = db.artifacts.get_many([job.artifact_id for job in jobs], now, with_content=True)
            claimed: dict[str, dict[str, Any]] = {}
            for job in jobs:
                row = rows.get(job.artifact_id)
                if row is None or not row.is_latest:
                    db.jobs.cancel(job.job_id, now, "artifact version replaced or deleted")
                    continue
                fields: dict[str, Any] = {"index_attempts": row.index_attempts + 1, "status": row.status}
                if not row.is_indexed and row.status in ("pending", "failed") and row.index_owns_status():
                    fields["status"] = "processing"
                claimed[row.artifact_id] = fields
                tasks.append(IndexTask(job=job, row=row))
            db.artifacts.update_many(claimed)
        return tasks

    def next_job_due(self) -> datetime | None:
        with self.ctx.lock:
            return self.db.jobs.next_due(INDEX_JOB_TYPES)

    def prepare_index(self, tasks: list[IndexTask],
                      run: Callable[[list[PrepareInput]], list[Prepared]] | None = None) -> list[Prepared]:
        """Extract, chunk and embed (no lock: this is the slow part), with `run` (default: in this process; the
        owner's job runner passes a child process, `index/child.py`). Errors are per task; a `run` that fails
        fails the batch, whose jobs are retried."""
        inputs: list[PrepareInput] = []
        failed: dict[int, Prepared] = {}
        for i, task in enumerate(tasks):
            try:
                inputs.append(PrepareInput(row=task.row, pdf=self._pdf_bytes(task.row)))
            except Exception as exc:
                failed[i] = Prepared(chunks=[], error=f"{type(exc).__name__}: {exc}")
        try:
            prepared = iter((run or self.indexer.prepare_batch)(inputs))
        except Exception as exc:
            log.warning("preparing %d index jobs failed: %s", len(inputs), exc)
            return [failed.get(i) or Prepared(chunks=[], error=str(exc)[:2000]) for i in range(len(tasks))]
        return [failed[i] if i in failed else next(prepared) for i in range(len(tasks))]

    def _pdf_bytes(self, row: ArtifactRow) -> bytes | None:
        """A PDF's bytes when its text is still to be extracted (content_text has it otherwise)."""
        if (row.content_text is None and row.has_file and row.blob_key
                and row.mime_type.split(";")[0].strip() == "application/pdf"
                and row.size_bytes <= contentlib.MAX_PDF_EXTRACT_BYTES):
            return self.ctx.blobs.get(row.blob_key)
        return None

    def commit_index(self, tasks: list[IndexTask], prepared: list[Prepared]) -> list[ChangeEvent]:
        """Write each task's chunks, index fields and job outcome: one transaction for the batch (a commit costs
        more than a small insert), with one statement per table for all its chunks, postings and rows."""
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            now = utcnow()
            try:
                with self.ctx.lock:
                    with self.db.transaction():
                        events, added = self._commit_batch(tasks, prepared, now)
                    # After the commit, so the in-memory mirror never holds a chunk the catalog does not.
                    for artifact_id, seqs, prep in added:
                        assert prep.vectors is not None
                        self.cache.add(artifact_id, seqs, prep.vectors, [c.n_terms for c in prep.chunks],
                                       [(c.terms, c.tfs) for c in prep.chunks])
                return events
            except Contention:
                # Rolled back whole by a shared catalog's deadlock settlement: the prepared work still holds.
                if attempt == COMMIT_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    def abandon_index(self, tasks: list[IndexTask], error: str) -> None:
        """A batch whose commit failed: each job still running counts a failed attempt (retried later, or given
        up), instead of staying `running` under this process's lease for as long as it lives."""
        now = utcnow()
        with self.ctx.lock, self.db.transaction():
            running = self.db.jobs.running([t.job.job_id for t in tasks])
            for task in tasks:
                if task.job.job_id in running:
                    self.retry.fail(self.db.jobs, task.job.job_id, task.job.attempts, error[:2000], now)

    def _commit_batch(self, tasks: list[IndexTask], prepared: list[Prepared],
                      now: datetime) -> tuple[list[ChangeEvent], list[tuple[str, list[int], Prepared]]]:
        db = self.db
        events: list[ChangeEvent] = []
        # The artifact rows first, as every writer takes them: a new version made meanwhile either committed
        # (is_latest is false below) or waits until these chunks are written, then removes them itself.
        db.artifacts.lock([t.row.artifact_id for t in tasks])
        running = db.jobs.running([task.job.job_id for task in tasks])
        current = db.artifacts.get_many([t.row.artifact_id for t in tasks if t.job.job_id in running], now)
        ready: list[tuple[IndexTask, ArtifactRow, Prepared]] = []
        for task, prep in zip(tasks, prepared, strict=True):
            job_id = task.job.job_id
            if job_id not in running:
                continue  # cancelled meanwhile (replaced, deleted, model changed)
            row = current.get(task.row.artifact_id)
            if row is None or not row.is_latest:
                db.jobs.cancel(job_id, now, "artifact version replaced or deleted")
                continue
            if prep.error is not None:
                self._record_failure(task, row, prep.error, now)
            else:
                ready.append((task, row, prep))
            events.append(self.ctx.event("updated", row.tenant, row.root_artifact_id, [row.artifact_id]))
        return events, self._write_chunks(ready, now)

    def _record_failure(self, task: IndexTask, row: ArtifactRow, error: str, now: datetime) -> None:
        error = error[:2000]
        retrying = self.retry.fail(self.db.jobs, task.job.job_id, task.job.attempts, error, now)
        fields: dict[str, Any] = {"index_error": error}
        if row.status == "processing" and row.index_owns_status():
            fields["status"] = "pending" if retrying else "failed"
        self.db.artifacts.update(row.artifact_id, fields)
        log.warning("index job %s for %s failed (attempt %d, %s): %s", task.job.job_id, row.artifact_id,
                    task.job.attempts, "will retry" if retrying else "giving up", error)

    def _write_chunks(self, ready: list[tuple[IndexTask, ArtifactRow, Prepared]],
                      now: datetime) -> list[tuple[str, list[int], Prepared]]:
        """Replace these versions' chunks and postings, mark them indexed and their jobs done (in the caller's
        transaction); (artifact id, new chunk seqs, prepared) for the search cache."""
        db = self.db
        if not ready:
            return []
        # Re-indexing: the old chunks go first. (A first index skips this: deleting postings scans them.)
        maybe_indexed = [row.artifact_id for _, row, _ in ready if not row.chunk_count]
        stale = [row.artifact_id for _, row, _ in ready if row.chunk_count]
        stale += sorted(db.chunks.with_chunks(maybe_indexed))
        if stale:
            db.postings.delete_artifacts(stale)
            self.cache.note_removed(db.chunks.delete_many(stale))
        all_seqs = db.chunks.next_seqs(sum(len(prep.chunks) for _, _, prep in ready))
        cols: dict[str, list[Any]] = {c: [] for c in CHUNK_COLUMNS}
        terms: list[np.ndarray] = []
        term_seqs: list[np.ndarray] = []
        tfs: list[np.ndarray] = []
        indexed: dict[str, dict[str, Any]] = {}
        added: list[tuple[str, list[int], Prepared]] = []
        start = 0
        for task, row, prep in ready:
            aid, n = row.artifact_id, len(prep.chunks)
            seqs = all_seqs[start:start + n]
            start += n
            collection = "sources" if row.promoted_to_source_id else "artifacts"
            shared = (aid, row.root_artifact_id, row.version, row.org_id, row.workspace_id, row.namespace_id,
                      row.thread_id, row.artifact_type, row.tags, collection, row.chunk_expiry())
            for seq, c in zip(seqs, prep.chunks, strict=True):
                for name, value in zip(_SHARED_COLUMNS, shared, strict=True):
                    cols[name].append(value)
                cols["seq"].append(seq)
                cols["chunk_index"].append(c.index)
                cols["n_terms"].append(c.n_terms)
                cols["chunk_id"].append(f"{aid}:{c.index}")
                cols["start_char"].append(c.start)
                cols["end_char"].append(c.end)
                cols["text"].append(c.text)
                terms.append(np.asarray(c.terms, dtype=np.int64))
                term_seqs.append(np.full(len(c.terms), seq, dtype=np.int64))
                tfs.append(np.asarray(c.tfs, dtype=np.int32))
            fields: dict[str, Any] = {
                "is_indexed": True, "indexed_at": now, "index_error": None, "chunk_count": n,
                "index_collection": collection, "embedding_model_id": self.indexer.model_id, "status": row.status,
            }
            if prep.extracted_text is not None and task.row.content_text is None:  # `row` has no content_text
                fields["content_text"] = prep.extracted_text
                fields["content_preview"] = contentlib.preview(prep.extracted_text)
            if row.status in ("pending", "processing", "failed") and row.index_owns_status():
                fields["status"] = "ready"
            indexed[aid] = fields
            added.append((aid, seqs, prep))
        vectors = [prep.vectors for _, _, prep in ready if prep.chunks]
        db.chunks.add_rows(cols, np.concatenate(vectors) if vectors else np.empty((0, db.chunks.dim), np.float32))
        if terms:
            db.postings.add(np.concatenate(terms), np.concatenate(term_seqs), np.concatenate(tfs))
        db.artifacts.update_many(indexed)
        db.jobs.succeed_many([task.job.job_id for task, _, _ in ready], now)
        return added


# The chunk columns copied from the artifact row (the same for all of a version's chunks).
_SHARED_COLUMNS = ("artifact_id", "root_artifact_id", "version", "org_id", "workspace_id", "namespace_id",
                   "thread_id", "artifact_type", "tags", "collection", "expires_at")
