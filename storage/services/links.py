"""Download links: signing one for a version, resolving a presented one, and what a download serves."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from artifact_mcp.storage.clock import to_us, utcnow
from artifact_mcp.storage.errors import Forbidden, InvalidInput
from artifact_mcp.storage.links import (
    DENIED,
    MAX_EXPIRES_IN,
    MIN_EXPIRES_IN,
    DownloadLink,
    DownloadTarget,
    LinkClaims,
    LinkSigner,
    download_file_name,
)
from artifact_mcp.storage.models import Scope
from artifact_mcp.storage.repositories.rows import ArtifactRow
from artifact_mcp.storage.services.context import StoreContext


class LinkService:
    def __init__(self, ctx: StoreContext, signer: LinkSigner) -> None:
        self.ctx = ctx
        self.db = ctx.db
        self.signer = signer

    def download_link(self, scope: Scope, artifact_id: str, expires_in: int, token_id: str | None,
                      issued_at: datetime | None = None) -> DownloadLink:
        if not MIN_EXPIRES_IN <= expires_in <= MAX_EXPIRES_IN:
            raise InvalidInput(f"expires_in must be {MIN_EXPIRES_IN}-{MAX_EXPIRES_IN} seconds (1 minute to 1 day), "
                               f"not {expires_in}")
        now = utcnow()
        with self.ctx.lock:
            row = self.ctx.visible_row(scope, artifact_id, now, include_expired=False)
        if issued_at is not None and issued_at.tzinfo is not None:
            issued_at = issued_at.astimezone(UTC).replace(tzinfo=None)
        issued = min(issued_at or now, now)
        expires_at = issued + timedelta(seconds=expires_in)
        token = self.signer.sign(LinkClaims(artifact_id=artifact_id, version=row.version,
                                            expires=to_us(expires_at) // 1_000_000, token_id=token_id))
        return DownloadLink(
            token=token, artifact_id=artifact_id, version=row.version, scope=scope,
            expires_at=expires_at.replace(microsecond=0), expires_in=expires_in,
            file_name=download_file_name(row.file_name, row.name, row.mime_type),
            content_type=row.mime_type, size_bytes=row.size_bytes, blob_key=row.blob_key,
        )

    def resolve_download(self, token: str) -> DownloadTarget:
        claims = self.signer.verify(token, time.time())
        now = utcnow()
        with self.ctx.lock:
            # Without content_text (a streamed text file's can be 16 MiB): only text/JSON content needs it.
            row = self.db.artifacts.get_many([claims.artifact_id], now).get(claims.artifact_id)
            if row is not None and not row.has_file:
                row = self.db.artifacts.get(claims.artifact_id, now)
        if row is None or row.version != claims.version or row.is_expired:
            raise Forbidden(DENIED)
        return _target(row, claims.token_id)

    def download_target(self, scope: Scope, artifact_id: str) -> DownloadTarget:
        with self.ctx.lock:
            row = self.ctx.visible_row(scope, artifact_id, utcnow(), include_expired=False)
        return _target(row, None)


def _target(row: ArtifactRow, token_id: str | None) -> DownloadTarget:
    text = None if row.has_file else (row.content_text or "")
    return DownloadTarget(
        artifact_id=row.artifact_id, version=row.version, scope=row.tenant,
        token_id=token_id, file_name=download_file_name(row.file_name, row.name, row.mime_type),
        content_type=row.mime_type, size_bytes=len(text.encode()) if text is not None else row.size_bytes,
        sha256=row.sha256, blob_key=row.blob_key, text=text,
    )
