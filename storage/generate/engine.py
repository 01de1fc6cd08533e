"""Generated documents as store operations: accepting a request (idempotently), and the generation job's steps.

`GenerationStore` is mixed into `ArtifactStore`, so its public methods are forwarded like every other store
method (storage/sharing.py). A request is accepted in one transaction: the artifact row (status `processing`),
its job, the generation record (request, material ids resolved now, the client model's draft if any) and the
idempotency key. Everything after that (reading the material, writing, rendering, the blob) is the job's, in the
owner process, so a restart picks it up again. The store lock serializes acceptance, so concurrent retries with
one key find each other: exactly one artifact.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from artifact_mcp.storage import content as contentlib
from artifact_mcp.storage.catalog import utcnow
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
from artifact_mcp.storage.jobs import GENERATE_JOB_TYPES, JobQueue
from artifact_mcp.storage.models import Artifact, ChangeEvent, QueryRequest, Scope

if TYPE_CHECKING:
    from artifact_mcp.storage.blobs import BlobStore
    from artifact_mcp.storage.catalog import Catalog

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
    job: dict[str, Any]
    row: dict[str, Any]
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


class GenerationStore:
    """Mixin for ArtifactStore (whose attributes it uses)."""

    if TYPE_CHECKING:
        catalog: Catalog
        blobs: BlobStore
        jobs: JobQueue
        max_content_bytes: int
        _lock: threading.RLock

        @property
        def con(self) -> Any: ...
        def _visible_row(self, scope: Scope, artifact_id: str, now: datetime, *,
                         include_expired: bool = True) -> dict[str, Any]: ...
        def _to_model(self, row: dict[str, Any], *, max_chars: int | None = None) -> Artifact: ...
        def _staged(self, data: bytes | None) -> Any: ...
        def query(self, scope: Scope, req: QueryRequest) -> Any: ...
        @staticmethod
        def _event(kind: str, scope: Scope, root: str, ids: list[str]) -> ChangeEvent: ...

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
            if self.catalog.get(artifact_id, now) is not None:
                return self._result(artifact_id, reused=True)
            source_ids = self._material_ids(scope, req, now)
            names = self.catalog.get_many(source_ids, now)
            title = default_title(req, [self._item(names[i], "") for i in source_ids])
            mime, ext = FORMAT_MIME[req.format]
            job_type = f"generate_{req.document_type}"
            row: dict[str, Any] = {
                "artifact_id": artifact_id, "org_id": scope.org_id, "workspace_id": scope.workspace_id,
                "namespace_id": scope.namespace_id, "thread_id": req.thread_id, "name": title,
                "description": f"{req.document_type.capitalize()} generated from {len(source_ids)} artifact(s) "
                               f"as {req.format}",
                "artifact_type": req.document_type, "version": 1, "root_artifact_id": artifact_id,
                "is_latest": True, "replaced_by_version": None, "content_kind": None, "content_preview": None,
                "content_text": None, "file_name": f"{_slug(title)}.{ext}", "mime_type": mime, "size_bytes": 0,
                "sha256": None, "has_file": False, "blob_key": None, "summary": None, "keywords": [], "tags": [],
                "metadata": {
                    "sources": source_ids,
                    "generation": {"request": req.model_dump(mode="json", exclude={"idempotency_key"}),
                                   "writer": writer_for(req, draft),
                                   **({"model": draft.model} if draft is not None and draft.model else {})},
                },
                "source": "generate_artifact", "source_execution_id": None, "source_step_id": None,
                "source_tool": "generate_artifact", "scope": "namespace", "status": "processing",
                "ttl_seconds": None, "expires_at": None, "is_pinned": False, "is_indexed": False, "indexed_at": None,
                "index_collection": None, "index_error": None, "index_attempts": 0, "embedding_model_id": None,
                "chunk_count": 0, "promoted_to_source_id": None, "created_by": created_by or principal_id,
                "created_at": now, "updated_at": now, "document_type": req.document_type, "format": req.format,
                "generation_error": None,
            }
            with self.catalog.transaction():
                self.catalog.insert(row)
                job_id = self.jobs.enqueue(row, now, job_type)
                # The job id is known only now: it is this artifact's provenance "execution".
                self.catalog.update(artifact_id, {"source_execution_id": job_id})
                self.con.execute(
                    "INSERT INTO generations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [artifact_id, job_id, principal_id, req.model_dump_json(exclude={"idempotency_key"}),
                     source_ids, draft.text if draft else None, draft.model if draft else None, now],
                )
                if req.idempotency_key is not None:
                    # Lapsed keys go here (acceptance is rare; the table stays small).
                    self.con.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", [now])
                    self.con.execute(
                        "INSERT INTO idempotency_keys VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [principal_id, req.idempotency_key, request_hash, artifact_id, job_id, now,
                         now + timedelta(seconds=IDEMPOTENCY_TTL_SECONDS)],
                    )
            result = self._result(artifact_id, reused=False)
        return result, self._event("created", scope, artifact_id, [artifact_id])

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
        found = self.con.execute(
            "SELECT request_hash, artifact_id FROM idempotency_keys WHERE principal_id = ? AND key = ? "
            "AND expires_at > ?", [principal_id, req.idempotency_key, now],
        ).fetchone()
        if found is None:
            return None
        if found[0] != request_hash:
            raise Conflict(
                f"idempotency_key {req.idempotency_key!r} was already used for a different request (it made "
                f"artifact {found[1]}); send that request again to get its artifact, or use a new key"
            )
        if self.catalog.get(found[1], now) is None:
            # The artifact it made was deleted since: the key no longer stands for anything.
            self.con.execute("DELETE FROM idempotency_keys WHERE principal_id = ? AND key = ?",
                             [principal_id, req.idempotency_key])
            return None
        return self._result(found[1], reused=True)

    def _result(self, artifact_id: str, *, reused: bool) -> GenerateResult:
        now = utcnow()
        row = self.catalog.get(artifact_id, now)
        assert row is not None
        jobs = [j for j in self.jobs.for_artifacts([artifact_id]) if j.type in GENERATE_JOB_TYPES]
        writer = (row["metadata"].get("generation") or {}).get("writer", "extractive")
        return GenerateResult(artifact=self._to_model(row, max_chars=0), job=jobs[0], reused=reused, writer=writer)

    def _material_ids(self, scope: Scope, req: GenerateRequest, now: datetime) -> list[str]:
        """The material's artifact version ids, in order: the thread's (oldest first, generated documents left
        out), the given ids, then the search results. All inside the caller's scope (a search may add the
        workspace's promoted sources)."""
        ids: list[str] = []
        if req.thread_id is not None:
            rows = self.con.execute(
                "SELECT artifact_id FROM artifacts WHERE org_id = ? AND workspace_id = ? AND namespace_id = ? "
                "AND thread_id = ? AND is_latest "
                "AND NOT (expires_at IS NOT NULL AND NOT is_pinned AND expires_at <= ?) "
                # Documents generated from the thread are not its material (no summaries of summaries, and the
                # material stays the same between retries); name them in artifact_ids to include them.
                "AND document_type IS NULL ORDER BY created_at, artifact_id LIMIT ?",
                [scope.org_id, scope.workspace_id, scope.namespace_id, req.thread_id, now, MAX_THREAD_ARTIFACTS],
            ).fetchall()
            ids += [r[0] for r in rows]
        for artifact_id in req.artifact_ids or []:
            self._visible_row(scope, artifact_id, now, include_expired=False)  # NotFound outside the scope
            ids.append(artifact_id)
        if req.query is not None:
            found = self.query(scope, QueryRequest(query=req.query, top_k=req.top_k, max_context_tokens=0))
            ids += [hit.artifact.artifact_id for hit in found.results]
        ids = list(dict.fromkeys(ids))
        if not ids:
            where = " and ".join(
                part for part in (f"thread {req.thread_id!r}" if req.thread_id else "",
                                  f"the search {req.query!r}" if req.query else "") if part)
            raise InvalidInput(f"no material to generate from: {where} found no artifacts in scope {scope.label()}; "
                               "check the thread id with list_artifacts, or pass artifact_ids")
        return ids

    def _item(self, row: dict[str, Any], text: str, truncated: bool = False) -> MaterialItem:
        return MaterialItem(
            artifact_id=row["artifact_id"], name=row["name"], version=row["version"],
            artifact_type=row["artifact_type"], mime_type=row["mime_type"], created_at=row["created_at"],
            created_by=row["created_by"], source=row["source"], source_tool=row["source_tool"],
            thread_id=row["thread_id"], text=text, truncated=truncated,
        )

    def _items(self, scope: Scope, ids: list[str], now: datetime, max_chars: int | None) -> list[MaterialItem]:
        """The material's texts. Rows that vanished, or (defensively) that left the caller's org/workspace, are
        skipped: material from another tenant is never read."""
        items = []
        for artifact_id in ids:
            row = self.catalog.get(artifact_id, now)
            if row is None or (row["org_id"], row["workspace_id"]) != (scope.org_id, scope.workspace_id):
                continue
            text = row["content_text"]
            if text is None and row["has_file"] and row["mime_type"].split(";")[0].strip() == "application/pdf":
                try:
                    text = contentlib.extract_pdf_text(self.blobs.get(row["blob_key"]))
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
            for job in self.jobs.claim(now, limit, GENERATE_JOB_TYPES):
                row = self.catalog.get(job["artifact_id"], now)
                gen = self.con.execute(
                    "SELECT request, source_ids, draft, draft_model FROM generations WHERE artifact_id = ?",
                    [job["artifact_id"]],
                ).fetchone()
                if row is None or gen is None:
                    self.jobs.cancel(job["job_id"], now, "artifact deleted")
                    continue
                request = GenerateRequest.model_validate(json.loads(gen[0]) if isinstance(gen[0], str) else gen[0])
                draft = Draft(text=gen[2], model=gen[3]) if gen[2] is not None else None
                tasks.append(GenerationTask(job=job, row=row, request=request, source_ids=list(gen[1]), draft=draft))
        return tasks

    def next_generation_due(self) -> datetime | None:
        with self._lock:
            return self.jobs.next_due(GENERATE_JOB_TYPES)

    def run_generation(self, task: GenerationTask) -> GenerationOutcome:
        """Read the material, write and render the document (no lock held but while reading)."""
        row = task.row
        scope = Scope(org_id=row["org_id"], workspace_id=row["workspace_id"], namespace_id=row["namespace_id"])
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
            doc.title = row["name"]
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
            log.exception("generating %s failed", row["artifact_id"])
            return GenerationOutcome(error=f"{type(exc).__name__}: {exc}")

    def commit_generation(self, task: GenerationTask, outcome: GenerationOutcome) -> list[ChangeEvent]:
        """Store the document (blob first, then the row flips to `completed` and its index job is queued, in one
        transaction), or record the failure (no blob is written for a failed generation)."""
        row = task.row
        aid = row["artifact_id"]
        scope = Scope(org_id=row["org_id"], workspace_id=row["workspace_id"], namespace_id=row["namespace_id"])
        event = self._event("updated", scope, row["root_artifact_id"], [aid])
        if outcome.error is not None:
            with self._lock:
                now = utcnow()
                if not self.jobs.is_running(task.job["job_id"]):
                    return []
                error = outcome.error[:2000]
                attempts = self.jobs.max_attempts if outcome.permanent else task.job["attempts"]
                with self.catalog.transaction():
                    retrying = self.jobs.fail(task.job["job_id"], attempts, error, now)
                    if not retrying and self.catalog.get(aid, now) is not None:
                        self.catalog.update(aid, {"status": "failed", "generation_error": error, "updated_at": now})
            log.warning("generation job %s for %s failed (%s): %s", task.job["job_id"], aid,
                        "will retry" if retrying else "giving up", error)
            return [] if retrying else [event]
        assert outcome.data is not None and outcome.markdown is not None
        committed = False
        with self._staged(outcome.data) as (key, digest), self._lock:
            now = utcnow()
            current = self.catalog.get(aid, now)
            if self.jobs.is_running(task.job["job_id"]) and current is not None:
                metadata = dict(current["metadata"])
                metadata["generation"] = {**(metadata.get("generation") or {}), "writer": outcome.writer}
                with self.catalog.transaction():
                    self.catalog.update(aid, {
                        "status": "completed", "has_file": True, "blob_key": key, "sha256": digest,
                        "size_bytes": len(outcome.data), "content_kind": None, "content_text": outcome.markdown,
                        "content_preview": contentlib.preview(outcome.markdown), "generation_error": None,
                        "metadata": metadata, "updated_at": now,
                    })
                    self.jobs.succeed(task.job["job_id"], now)
                    # Searchable like any artifact: its Markdown is indexed by the ordinary index job.
                    self.jobs.enqueue(current, now, "index")
                committed = True
            elif current is None:
                self.jobs.cancel(task.job["job_id"], now, "artifact deleted")
        if not committed:
            with self._lock:
                self.blobs.delete_unreferenced([key], self.catalog.referenced_blob_keys([key]))
            return []
        return [event]
