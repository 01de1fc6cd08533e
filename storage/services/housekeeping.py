"""Housekeeping (the owner's periodic work): the TTL sweep and the blob garbage collector."""

from __future__ import annotations

import logging

from artifact_mcp.storage.clock import utcnow
from artifact_mcp.storage.models import ChangeEvent
from artifact_mcp.storage.services.context import StoreContext
from artifact_mcp.storage.services.writes import WriteService

log = logging.getLogger(__name__)


class HousekeepingService:
    def __init__(self, ctx: StoreContext, writes: WriteService) -> None:
        self.ctx = ctx
        self.db = ctx.db
        self.writes = writes

    def sweep_expired(self) -> list[ChangeEvent]:
        """Delete expired versions; an artifact whose latest version expired goes entirely."""
        now = utcnow()
        events: list[ChangeEvent] = []
        with self.ctx.lock:
            roots = {root for _, root in self.db.artifacts.expired(now)}
            for root in roots:
                versions = self.db.artifacts.versions(root, now)
                if not versions:
                    continue
                latest_expired = versions[-1].is_expired
                doomed = versions if latest_expired else [v for v in versions if v.is_expired]
                result = self.writes.delete_rows(root, versions, doomed, now)
                events.append(self.ctx.event("deleted", versions[0].tenant, root, result.deleted_artifact_ids))
        if events:
            log.info("ttl sweeper removed %d artifacts' expired versions", len(events))
        return events

    def collect_garbage(self) -> int:
        """Remove blobs no row references, and dead temporary files.

        Listing the blob store can be slow, so it happens outside the lock; only the final check of
        the candidates against the catalog (and against in-flight writes) and their deletion hold it."""
        keys = list(self.ctx.blobs.iter_keys())
        with self.ctx.lock:
            removed = self.ctx.drop_unreferenced(keys)
        removed += self.ctx.blobs.clean_tmp()
        if removed:
            log.info("blob gc removed %d files", removed)
        return removed
