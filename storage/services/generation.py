"""Generated documents as store operations: accepting a request (idempotently), and the generation job's steps.

`GenerationService` is composed into `ArtifactStore`, whose operations forward it like every other store
method (storage/ownership/). A request is accepted in one transaction: the artifact row (status `processing`),
its job, the generation record (request, material ids resolved now, the client model's draft if any) and the
idempotency key. Everything after that (reading the material, writing, rendering, the blob) is the job's, in the
owner process, so a restart picks it up again. The store lock serializes acceptance, so concurrent retries with
one key find each other: exactly one artifact.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from artifact_mcp.storage import content as contentlib
from artifact_mcp.storage.clock import utcnow
from artifact_mcp.storage.errors import Conflict, InvalidInput
from artifact_mcp.storage.generate.compose import compose, default_title
from artifact_mcp.storage.generate.formats import render
from artifact_mcp.storage.generate.models import (
    FORMAT_MIME,
    IDEMPOTENCY_TTL_SECONDS,
    MAX_THREAD_ARTIFACTS,
    Draft,
    GenerateRequest,
    GenerateResult,
    Material,
    MaterialItem,
    Writer,
)
from artifact_mcp.storage.jobs import GENERATE_JOB_TYPES, RetryPolicy
from artifact_mcp.storage.models import ChangeEvent, QueryRequest, Scope
from artifact_mcp.storage.repositories.protocols import DuplicateKey
from artifact_mcp.storage.repositories.rows import (
    ArtifactRow,
    ClaimedJob,
    ContentColumns,
    GenerationRow,
    IdempotencyRow,
    new_artifact_row,
)
from artifact_mcp.storage.services.context import StoreContext, to_model
from artifact_mcp.storage.services.recall import RecallService

log = logging.getLogger(__name__)

# What the client's model is shown (a prompt) and what the extractive path reads, per artifact and in total.
PROMPT_CHARS_TOTAL = 60_000
PROMPT_CHARS_MIN = 2_000
EXTRACT_CHARS_PER_ITEM = 200_000
EXTRACT_CHARS_TOTAL = 2_000_000


class GenerationFailed(Exception):
    """A generation that cannot succeed by retrying (no material left, document too large)."""


@dataclass
class GenerationTask:
    job: ClaimedJob
    row: ArtifactRow
    request: GenerateRequest
    source_ids: list[str]
    draft: Draft | None


@dataclass
class GenerationOutcome:
    data: bytes | None = None
    markdown: str | None = None
    writer: Writer | None = None
    error: str | None = None
    permanent: bool = False


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:80] or "document"


def writer_for(req: GenerateRequest, draft: Draft | None) -> Writer:
    if req.document_type == "transcript":
        return "verbatim"
    return "client_model" if draft is not None and draft.text.strip() else "extractive"


class GenerationService:
    def __init__(self, ctx: StoreContext, recall: RecallService, retry: RetryPolicy) -> None:
        self.ctx = ctx
        self.db = ctx.db
        self.recall = recall
        self.retry = retry
        self._lock = ctx.lock
        self.blobs = ctx.blobs
        self.max_content_bytes = ctx.max_content_bytes

    # --- accepting a request (forwarded API) -----------------------------------------------------

    def generate(self, scope: Scope, principal_id: str, req: GenerateRequest, artifact_id: str,
                 draft: Draft | None = None, created_by: str | None = None
                 ) -> GenerateResult | tuple[GenerateResult, ChangeEvent]:
        """Accept a generation request: the new artifact (status `processing`) and its queued job, or, for a
        repeated idempotency key (or a retried call with the same pre-chosen `artifact_id`), the first ones."""
        request_hash = req.request_hash(scope)
        with self._lock:
            now = utcnow()
            replay = self._replay(principal_id, req, request_hash, now)
            if replay is not None:
                return replay
            if self.db.artifacts.get(artifact_id, now) is not None:
                return self._result(artifact_id, reused=True)
            source_ids = self._material_ids(scope, req, now)
            names = self.db.artifacts.get_many(source_ids, now)
            title = default_title(req, [self._item(names[i], "") for i in source_ids])
            mime, ext = FORMAT_MIME[req.format]
            job_type = f"generate_{req.document_type}"
            content = ContentColumns(content_kind=None, content_text=None, content_preview=None, mime_type=mime,
                                     size_bytes=0, sha256=None, has_file=False, blob_key=None,
                                     file_name=f"{_slug(title)}.{ext}")
            row = new_artifact_row(
                artifact_id, scope, name=title, artifact_type=req.document_type, content=content, now=now,
                thread_id=req.thread_id,
                description=f"{req.document_type.capitalize()} generated from {len(source_ids)} artifact(s) "
                            f"as {req.format}",
                metadata={
                    "sources": source_ids,
                    "generation": {"request": req.model_dump(mode="json", exclude={"idempotency_key"}),
                                   "writer": writer_for(req, draft),
                                   **({"model": draft.model} if draft is not None and draft.model else {})},
                },
                source="generate_artifact", source_tool="generate_artifact", status="processing",
                created_by=created_by or principal_id, document_type=req.document_type, format=req.format,
            )
            db = self.db
            try:
                with db.transaction():
                    db.artifacts.insert(row)
                    job_id = db.jobs.enqueue(row, now, job_type)
                    # The job id is known only now: it is this artifact's provenance "execution".
                    db.artifacts.update(artifact_id, {"source_execution_id": job_id})
                    db.generations.insert(GenerationRow(
                        artifact_id=artifact_id, job_id=job_id, principal_id=principal_id,
                        request=req.model_dump_json(exclude={"idempotency_key"}), source_ids=source_ids,
                        draft=draft.text if draft else None, draft_model=draft.model if draft else None,
                        created_at=now,
                    ))
                    if req.idempotency_key is not None:
                        # Lapsed keys go here (acceptance is rare; the table stays small).
                        db.idempotency.delete_lapsed(now)
                        db.idempotency.insert(IdempotencyRow(
                            principal_id=principal_id, key=req.idempotency_key, request_hash=request_hash,
                            artifact_id=artifact_id, job_id=job_id, created_at=now,
                            expires_at=now + timedelta(seconds=IDEMPOTENCY_TTL_SECONDS),
                        ))
            except DuplicateKey:
                # Another process (a replica on the same catalog) accepted the same key between our look and
                # our write: its transaction won the primary key, ours rolled back whole. Replay its artifact.
                replay = self._replay(principal_id, req, request_hash, now)
                if replay is not None:
                    return replay
                if self.db.artifacts.get(artifact_id, now) is not None:  # the same retried call, elsewhere
                    return self._result(artifact_id, reused=True)
                raise
            result = self._result(artifact_id, reused=False)
        return result, self.ctx.event("created", scope, artifact_id, [artifact_id])

    def find_generation(self, scope: Scope, principal_id: str, req: GenerateRequest) -> GenerateResult | None:
        """What `generate` would replay for this idempotency key (None: it would accept a new request). Raises
        Conflict when the key was used for a different request."""
        if req.idempotency_key is None:
            return None
        with self._lock:
            return self._replay(principal_id, req, req.request_hash(scope), utcnow())

    def generation_material(self, scope: Scope, req: GenerateRequest) -> Material:
        """The material as the client's model will read it: each artifact's text, cut to share a prompt budget."""
        with self._lock:
            now = utcnow()
            ids = self._material_ids(scope, req, now)
            per_item = max(PROMPT_CHARS_MIN, PROMPT_CHARS_TOTAL // len(ids))
            return Material(items=self._items(scope, ids, now, per_item))

    # --- helpers (caller holds the lock) ---------------------------------------------------------

    def _replay(self, principal_id: str, req: GenerateRequest, request_hash: str,
                now: datetime) -> GenerateResult | None:
        if req.idempotency_key is None:
            return None
        found = self.db.idempotency.find(principal_id, req.idempotency_key, now)
        if found is None:
            return None
        if found.request_hash != request_hash:
            raise Conflict(
                f"idempotency_key {req.idempotency_key!r} was already used for a different request (it made "
                f"artifact {found.artifact_id}); send that request again to get its artifact, or use a new key"
            )
        if self.db.artifacts.get(found.artifact_id, now) is None:
            # The artifact it made was deleted since: the key no longer stands for anything.
            self.db.idempotency.delete(principal_id, req.idempotency_key)
            return None
        return self._result(found.artifact_id, reused=True)

    def _result(self, artifact_id: str, *, reused: bool) -> GenerateResult:
        now = utcnow()
        row = self.db.artifacts.get(artifact_id, now)
        assert row is not None
        jobs = [j for j in self.db.jobs.for_artifacts([artifact_id]) if j.type in GENERATE_JOB_TYPES]
        writer = (row.metadata.get("generation") or {}).get("writer", "extractive")
        return GenerateResult(artifact=to_model(row, max_chars=0), job=jobs[0], reused=reused, writer=writer)

    def _material_ids(self, scope: Scope, req: GenerateRequest, now: datetime) -> list[str]:
        """The material's artifact version ids, in order: the thread's (oldest first, generated documents left
        out), the given ids, then the search results. All inside the caller's scope (a search may add the
        workspace's promoted sources)."""
        ids: list[str] = []
        if req.thread_id is not None:
            ids += self.db.artifacts.thread_material(scope, req.thread_id, now, MAX_THREAD_ARTIFACTS)
        for artifact_id in req.artifact_ids or []:
            self.ctx.visible_row(scope, artifact_id, now, include_expired=False)  # NotFound outside the scope
            ids.append(artifact_id)
        if req.query is not None:
            found = self.recall.query(scope, QueryRequest(query=req.query, top_k=req.top_k, max_context_tokens=0))
            ids += [hit.artifact.artifact_id for hit in found.results]
        ids = list(dict.fromkeys(ids))
        if not ids:
            where = " and ".join(
                part for part in (f"thread {req.thread_id!r}" if req.thread_id else "",
                                  f"the search {req.query!r}" if req.query else "") if part)
            raise InvalidInput(f"no material to generate from: {where} found no artifacts in scope {scope.label()}; "
                               "check the thread id with list_artifacts, or pass artifact_ids")
        return ids

    @staticmethod
    def _item(row: ArtifactRow, text: str, truncated: bool = False) -> MaterialItem:
        return MaterialItem(
            artifact_id=row.artifact_id, name=row.name, version=row.version, artifact_type=row.artifact_type,
            mime_type=row.mime_type, created_at=row.created_at, created_by=row.created_by, source=row.source,
            source_tool=row.source_tool, thread_id=row.thread_id, text=text, truncated=truncated,
        )

    def _items(self, scope: Scope, ids: list[str], now: datetime, max_chars: int | None) -> list[MaterialItem]:
        """The material's texts. Rows that vanished, or (defensively) that left the caller's org/workspace, are
        skipped: material from another tenant is never read."""
        items = []
        for artifact_id in ids:
            row = self.db.artifacts.get(artifact_id, now)
            if row is None or (row.org_id, row.workspace_id) != (scope.org_id, scope.workspace_id):
                continue
            text = row.content_text
            if text is None and row.has_file and row.blob_key and \
                    row.mime_type.split(";")[0].strip() == "application/pdf":
                try:
                    text = contentlib.extract_pdf_text(self.blobs.get(row.blob_key))
                except ValueError as exc:
                    log.info("material %s: %s", artifact_id, exc)
            text = text or ""
            truncated = max_chars is not None and len(text) > max_chars
            items.append(self._item(row, text[:max_chars] if truncated else text, truncated))
        return items

    # --- the job (owner process) -----------------------------------------------------------------

    def claim_generation_jobs(self, limit: int) -> list[GenerationTask]:
        now = utcnow()
        tasks: list[GenerationTask] = []
        with self._lock:
            for job in self.db.jobs.claim(now, limit, GENERATE_JOB_TYPES):
                row = self.db.artifacts.get(job.artifact_id, now)
                gen = self.db.generations.get(job.artifact_id)
                if row is None or gen is None:
                    self.db.jobs.cancel(job.job_id, now, "artifact deleted")
                    continue
                request = GenerateRequest.model_validate(
                    json.loads(gen.request) if isinstance(gen.request, str) else gen.request)
                draft = Draft(text=gen.draft, model=gen.draft_model) if gen.draft is not None else None
                tasks.append(GenerationTask(job=job, row=row, request=request, source_ids=gen.source_ids,
                                            draft=draft))
        return tasks

    def next_generation_due(self) -> datetime | None:
        with self._lock:
            return self.db.jobs.next_due(GENERATE_JOB_TYPES)

    def run_generation(self, task: GenerationTask) -> GenerationOutcome:
        """Read the material, write and render the document (no lock held but while reading)."""
        row = task.row
        scope = row.tenant
        req = task.request
        try:
            # A transcript is verbatim (the size limit guards it); the extractive writer reads a bounded sample.
            per_item = None if req.document_type == "transcript" or req.options.include_transcript else \
                min(EXTRACT_CHARS_PER_ITEM, max(PROMPT_CHARS_MIN, EXTRACT_CHARS_TOTAL // len(task.source_ids)))
            with self._lock:
                items = self._items(scope, task.source_ids, utcnow(), per_item)
            if not items:
                raise GenerationFailed("none of the material's artifacts exists any more (deleted or expired "
                                       "after the request); generate again from current material")
            doc = compose(req, items, task.draft, utcnow())
            doc.title = row.name
            data, markdown = render(doc, req.format)
            if len(data) > self.max_content_bytes:
                raise GenerationFailed(
                    f"the generated {req.format} document is {len(data)} bytes, over the {self.max_content_bytes}-"
                    "byte limit (ARTIFACT_MCP_MAX_UPLOAD_BYTES); generate from less material, lower "
                    "options.max_words, or leave out include_transcript"
                )
            return GenerationOutcome(data=data, markdown=markdown, writer=doc.writer)
        except GenerationFailed as exc:
            return GenerationOutcome(error=str(exc), permanent=True)
        except Exception as exc:
            log.exception("generating %s failed", row.artifact_id)
            return GenerationOutcome(error=f"{type(exc).__name__}: {exc}")

    def commit_generation(self, task: GenerationTask, outcome: GenerationOutcome) -> list[ChangeEvent]:
        """Store the document (blob first, then the row flips to `completed` and its index job is queued, in one
        transaction), or record the failure (no blob is written for a failed generation)."""
        row = task.row
        aid = row.artifact_id
        event = self.ctx.event("updated", row.tenant, row.root_artifact_id, [aid])
        db = self.db
        if outcome.error is not None:
            with self._lock:
                now = utcnow()
                if not db.jobs.is_running(task.job.job_id):
                    return []
                error = outcome.error[:2000]
                attempts = self.retry.max_attempts if outcome.permanent else task.job.attempts
                with db.transaction():
                    db.artifacts.lock([aid])  # before its job row, as every writer does
                    retrying = self.retry.fail(db.jobs, task.job.job_id, attempts, error, now)
                    if not retrying and db.artifacts.get(aid, now) is not None:
                        db.artifacts.update(aid, {"status": "failed", "generation_error": error, "updated_at": now})
            log.warning("generation job %s for %s failed (%s): %s", task.job.job_id, aid,
                        "will retry" if retrying else "giving up", error)
            return [] if retrying else [event]
        assert outcome.data is not None and outcome.markdown is not None
        committed = False
        with self.ctx.staged(outcome.data) as staged, self._lock:
            assert staged is not None
            key, digest = staged
            now = utcnow()
            current = db.artifacts.get(aid, now)
            if db.jobs.is_running(task.job.job_id) and current is not None:
                metadata = dict(current.metadata)
                metadata["generation"] = {**(metadata.get("generation") or {}), "writer": outcome.writer}
                with db.transaction():
                    db.artifacts.update(aid, {
                        "status": "completed", "has_file": True, "blob_key": key, "sha256": digest,
                        "size_bytes": len(outcome.data), "content_kind": None, "content_text": outcome.markdown,
                        "content_preview": contentlib.preview(outcome.markdown), "generation_error": None,
                        "metadata": metadata, "updated_at": now,
                    })
                    db.jobs.succeed(task.job.job_id, now)
                    # Searchable like any artifact: its Markdown is indexed by the ordinary index job.
                    db.jobs.enqueue(current, now, "index")
                committed = True
            elif current is None:
                db.jobs.cancel(task.job.job_id, now, "artifact deleted")
        if not committed:
            with self._lock:
                self.ctx.drop_unreferenced([key])
            return []
        return [event]
