"""Indexing: the index job runner's steps (claim, prepare, commit), matching the stored index to the configured
embedding model, and taking versions out of the index."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from llama_index.core.schema import TextNode

from artifact_mcp.storage import content as contentlib
from artifact_mcp.storage.clock import utcnow
from artifact_mcp.storage.index import chunking
from artifact_mcp.storage.index.pipeline import Indexer, Prepared
from artifact_mcp.storage.index.search_cache import SearchCache
from artifact_mcp.storage.jobs import INDEX_JOB_TYPES, RetryPolicy
from artifact_mcp.storage.models import ChangeEvent
from artifact_mcp.storage.repositories.rows import ArtifactRow, ClaimedJob
from artifact_mcp.storage.services.context import StoreContext

log = logging.getLogger(__name__)


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

    # --- the job runner's steps ------------------------------------------------------------------

    def claim_index_jobs(self, limit: int) -> list[IndexTask]:
        """Mark due jobs running and snapshot their artifact rows."""
        db = self.db
        now = utcnow()
        tasks: list[IndexTask] = []
        with self.ctx.lock:
            for job in db.jobs.claim(now, limit, INDEX_JOB_TYPES):
                row = db.artifacts.get(job.artifact_id, now)
                if row is None or not row.is_latest:
                    db.jobs.cancel(job.job_id, now, "artifact version replaced or deleted")
                    continue
                fields: dict[str, Any] = {"index_attempts": row.index_attempts + 1}
                if not row.is_indexed and row.status in ("pending", "failed") and row.index_owns_status():
                    fields["status"] = "processing"
                db.artifacts.update(row.artifact_id, fields)
                tasks.append(IndexTask(job=job, row=row))
        return tasks

    def warm_up(self) -> None:
        """Load the embedding model and the chunkers (seconds, the first time) before the first job needs them."""
        try:
            chunking.split("Warm up. The chunkers load tokenizers on first use.", "text/plain")
            self.indexer.embed_query("warm up")
        except Exception:
            log.exception("warming up the index pipeline failed; the first index job will retry the load")

    def next_job_due(self) -> datetime | None:
        with self.ctx.lock:
            return self.db.jobs.next_due(INDEX_JOB_TYPES)

    def _index_text(self, row: ArtifactRow) -> tuple[str | None, str | None]:
        """(text to index, text newly extracted from a file for content_text)."""
        if row.content_text is not None:
            return row.content_text, None
        if (row.has_file and row.blob_key and row.mime_type.split(";")[0].strip() == "application/pdf"
                and row.size_bytes <= contentlib.MAX_PDF_EXTRACT_BYTES):
            text = contentlib.extract_pdf_text(self.ctx.blobs.get(row.blob_key))
            return text, text
        return None, None

    def prepare_index(self, tasks: list[IndexTask]) -> list[Prepared]:
        """Extract, chunk and embed (no lock: this is the slow part). Errors are per task; one embedding batch
        serves all tasks, because the model is several times faster on a batch than on one chunk at a time."""
        out: list[Prepared] = []
        for task in tasks:
            try:
                text, extracted = self._index_text(task.row)
                out.append(Prepared(chunks=self.indexer.prepare(task.row, text), extracted_text=extracted))
            except Exception as exc:
                out.append(Prepared(chunks=[], error=f"{type(exc).__name__}: {exc}"))
        ok = [p for p in out if p.error is None]
        try:
            vectors = self.indexer.embed([c.embed_text for p in ok for c in p.chunks])
        except Exception as exc:
            log.warning("embedding failed for %d artifacts: %s", len(ok), exc)
            for p in ok:
                p.error = f"embedding failed: {type(exc).__name__}: {exc}"
            return out
        start = 0
        for p in ok:
            p.vectors = vectors[start:start + len(p.chunks)]
            start += len(p.chunks)
        return out

    def commit_index(self, tasks: list[IndexTask], prepared: list[Prepared]) -> list[ChangeEvent]:
        """Write each task's chunks, index fields and job outcome: one transaction for the batch (a commit costs
        more than a small insert)."""
        now = utcnow()
        added: list[tuple[str, list[int], Prepared]] = []
        with self.ctx.lock:
            with self.db.transaction():
                events = self._commit_batch(tasks, prepared, now, added)
            # After the commit, so the in-memory mirror never holds a chunk the catalog does not.
            for artifact_id, seqs, prep in added:
                assert prep.vectors is not None
                self.cache.add(artifact_id, seqs, prep.vectors, [c.n_terms for c in prep.chunks],
                               [(c.terms, c.tfs) for c in prep.chunks])
        return events

    def _commit_batch(self, tasks: list[IndexTask], prepared: list[Prepared], now: datetime,
                      added: list[tuple[str, list[int], Prepared]]) -> list[ChangeEvent]:
        db = self.db
        events: list[ChangeEvent] = []
        for task, prep in zip(tasks, prepared, strict=True):
            job_id = task.job.job_id
            if not db.jobs.is_running(job_id):
                continue  # cancelled meanwhile (replaced, deleted, model changed)
            row = db.artifacts.get(task.row.artifact_id, now)
            if row is None or not row.is_latest:
                db.jobs.cancel(job_id, now, "artifact version replaced or deleted")
                continue
            if prep.error is not None:
                self._record_failure(task, row, prep.error, now)
            else:
                added.append((row.artifact_id, self._write_chunks(task, row, prep, now), prep))
            events.append(self.ctx.event("updated", row.tenant, row.root_artifact_id, [row.artifact_id]))
        return events

    def _record_failure(self, task: IndexTask, row: ArtifactRow, error: str, now: datetime) -> None:
        error = error[:2000]
        retrying = self.retry.fail(self.db.jobs, task.job.job_id, task.job.attempts, error, now)
        fields: dict[str, Any] = {"index_error": error}
        if row.status == "processing" and row.index_owns_status():
            fields["status"] = "pending" if retrying else "failed"
        self.db.artifacts.update(row.artifact_id, fields)
        log.warning("index job %s for %s failed (attempt %d, %s): %s", task.job.job_id, row.artifact_id,
                    task.job.attempts, "will retry" if retrying else "giving up", error)

    def _write_chunks(self, task: IndexTask, row: ArtifactRow, prep: Prepared, now: datetime) -> list[int]:
        """Replace the version's chunks and postings (in the caller's transaction); the new chunks' seqs."""
        db = self.db
        aid = row.artifact_id
        collection = "sources" if row.promoted_to_source_id else "artifacts"
        n = len(prep.chunks)
        if row.chunk_count or db.chunks.has_chunks(aid):
            # Re-indexing: the old chunks go first. (A first index skips this: deleting postings scans them.)
            db.postings.delete_artifacts([aid])
            self.cache.note_removed(db.chunks.delete_many([aid]))
        seqs = db.chunks.next_seqs(n)
        shared = {
            "artifact_id": aid, "root_artifact_id": row.root_artifact_id, "version": row.version,
            "org_id": row.org_id, "workspace_id": row.workspace_id, "namespace_id": row.namespace_id,
            "thread_id": row.thread_id, "artifact_type": row.artifact_type, "tags": row.tags,
            "collection": collection, "expires_at": row.chunk_expiry(),
        }
        assert prep.vectors is not None
        nodes = [
            TextNode(id_=f"{aid}:{c.index}", text=c.text, start_char_idx=c.start, end_char_idx=c.end,
                     embedding=prep.vectors[i].tolist(),
                     metadata={**shared, "seq": seqs[i], "chunk_index": c.index, "n_terms": c.n_terms})
            for i, c in enumerate(prep.chunks)
        ]
        db.chunks.add(nodes)
        terms: list[int] = []
        seq_col: list[int] = []
        tfs: list[int] = []
        for seq, c in zip(seqs, prep.chunks, strict=True):
            terms += c.terms
            seq_col += [seq] * len(c.terms)
            tfs += c.tfs
        db.postings.add(terms, seq_col, tfs)
        fields: dict[str, Any] = {
            "is_indexed": True, "indexed_at": now, "index_error": None, "chunk_count": n,
            "index_collection": collection, "embedding_model_id": self.indexer.model_id,
        }
        if prep.extracted_text is not None and row.content_text is None:
            fields["content_text"] = prep.extracted_text
            fields["content_preview"] = contentlib.preview(prep.extracted_text)
        if row.status in ("pending", "processing", "failed") and row.index_owns_status():
            fields["status"] = "ready"
        db.artifacts.update(aid, fields)
        db.jobs.succeed(task.job.job_id, now)
        return seqs
