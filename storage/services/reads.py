"""Reads: one version, a page of a listing, an artifact's versions, where an id lives, a version's content, a
scope's figures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from artifact_mcp.storage import content as contentlib
from artifact_mcp.storage.clock import to_us, utcnow
from artifact_mcp.storage.cursor import CursorCodec, Position, query_digest
from artifact_mcp.storage.models import (
    DEFAULT_MAX_CHARS,
    Artifact,
    ArtifactPage,
    ContentBody,
    ListQuery,
    Scope,
    SummaryPage,
    ThreadSummary,
)
from artifact_mcp.storage.repositories.rows import ArtifactRow
from artifact_mcp.storage.services.context import StoreContext, to_model, to_summary
from artifact_mcp.storage.stats import StoreStats


class ReadService:
    def __init__(self, ctx: StoreContext, cursors: CursorCodec) -> None:
        self.ctx = ctx
        self.db = ctx.db
        self.cursors = cursors

    def get(self, scope: Scope, artifact_id: str, include_expired: bool = False,
            max_chars: int = DEFAULT_MAX_CHARS) -> Artifact:
        with self.ctx.lock:
            row = self.ctx.visible_row(scope, artifact_id, utcnow(), include_expired=include_expired)
        return to_model(row, max_chars=max_chars)

    def list(self, scope: Scope, query: ListQuery) -> ArtifactPage:
        return ArtifactPage(**self._page(scope, query, lambda r: to_model(r, max_chars=0)))

    def list_summaries(self, scope: Scope, query: ListQuery) -> SummaryPage:
        """The same page as `list`, as cards."""
        return SummaryPage(**self._page(scope, query, to_summary))

    def _page(self, scope: Scope, query: ListQuery, item: Callable[[ArtifactRow], BaseModel]) -> dict[str, Any]:
        """A page's fields, each row made an item by `item`."""
        filters = query.model_dump(exclude={"cursor", "limit"})
        digest = query_digest({"scope": scope.model_dump(), "filters": filters})
        with self.ctx.lock:
            after = self.cursors.decode(query.cursor, digest) if query.cursor else None
            rows, total = self.db.artifacts.list(scope, query, after, utcnow())
        next_cursor = None
        if len(rows) > query.limit:
            rows = rows[: query.limit]
            last = rows[-1]
            next_cursor = self.cursors.encode(Position(to_us(last.created_at), last.artifact_id), digest)
        return {"artifacts": [item(r) for r in rows], "total": total, "has_more": next_cursor is not None,
                "next_cursor": next_cursor}

    def versions(self, scope: Scope, artifact_id: str) -> list[Artifact]:
        now = utcnow()
        with self.ctx.lock:
            row = self.ctx.visible_row(scope, artifact_id, now)
            rows = self.db.artifacts.versions(row.root_artifact_id, now)
        return [to_model(r, max_chars=0) for r in rows]

    def threads(self, scope: Scope, limit: int) -> list[ThreadSummary]:
        with self.ctx.lock:
            return self.db.artifacts.threads(scope, utcnow(), limit)

    def locate(self, artifact_id: str) -> Scope | None:
        with self.ctx.lock:
            row = self.db.artifacts.get(artifact_id, utcnow())
        return None if row is None else row.tenant

    def read_content(self, scope: Scope, artifact_id: str) -> ContentBody:
        with self.ctx.lock:
            row = self.ctx.visible_row(scope, artifact_id, utcnow(), include_expired=False)
        if row.has_file and row.blob_key:
            data = self.ctx.blobs.get(row.blob_key)
            text = contentlib.text_for(data, row.mime_type)
            return ContentBody(artifact_id=artifact_id, mime_type=row.mime_type, file_name=row.file_name,
                               text=text, data=None if text is not None else data)
        return ContentBody(artifact_id=artifact_id, mime_type=row.mime_type, file_name=row.file_name,
                           text=row.content_text)

    def stats(self, scope: Scope) -> StoreStats:
        now = utcnow()
        with self.ctx.lock:
            arts = self.db.artifacts.tally(scope, now)
            jobs = self.db.jobs.tally(scope)
        oldest = jobs.oldest_pending_at
        return StoreStats(
            artifacts=sum(arts.by_type.values()), by_type=arts.by_type, by_status=arts.by_status,
            versions=arts.versions, content_bytes=arts.content_bytes, blobs=arts.blobs, blob_bytes=arts.blob_bytes,
            jobs_pending=jobs.pending, jobs_running=jobs.running, jobs_failed=jobs.failed, oldest_pending_at=oldest,
            oldest_pending_seconds=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
        )
