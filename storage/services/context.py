"""What every service shares: the repositories, the blob store, the one store lock, and the few steps all of them
take (find a row the caller may see, turn a row into the API model, stage bytes before the lock)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import JsonValue

from artifact_mcp.storage import content as contentlib
from artifact_mcp.storage.blobs import BlobStore, blob_key
from artifact_mcp.storage.errors import NotFound
from artifact_mcp.storage.fair_lock import FairRLock
from artifact_mcp.storage.ids import artifact_uri
from artifact_mcp.storage.models import Artifact, ArtifactSummary, ChangeEvent, Scope, StagedBlob
from artifact_mcp.storage.repositories.protocols import Repositories
from artifact_mcp.storage.repositories.rows import ARTIFACT_COLUMNS, ArtifactRow

# Row fields the API model takes as they are (content is derived; blob_key and content_kind stay inside).
_MODEL_FIELDS = (*(c for c in ARTIFACT_COLUMNS if c not in ("content_kind", "blob_key", "content_text")), "is_expired")
_SUMMARY_FIELDS = tuple(k for k in ArtifactSummary.model_fields if k != "uri")


@dataclass
class StoreContext:
    db: Repositories
    blobs: BlobStore
    lock: FairRLock
    max_content_bytes: int

    # --- rows ------------------------------------------------------------------------------------

    def visible_row(self, scope: Scope, artifact_id: str, now: datetime, *,
                    include_expired: bool = True) -> ArtifactRow:
        row = self.db.artifacts.get(artifact_id, now)
        if row is None or not row.in_scope(scope):
            raise NotFound(
                f"no artifact {artifact_id!r} in scope {scope.label()}; check the id with list_artifacts, "
                "or pass the org_id/workspace_id/namespace_id it was created in"
            )
        if row.is_expired and not include_expired:
            assert row.expires_at is not None
            raise NotFound(
                f"artifact {artifact_id!r} expired at {row.expires_at.isoformat()}Z; pass include_expired=true "
                "to read it before the sweeper removes it"
            )
        return row

    @staticmethod
    def event(kind: str, scope: Scope, root: str, ids: list[str]) -> ChangeEvent:
        return ChangeEvent(kind=kind, scope=scope, root_artifact_id=root, artifact_ids=ids)  # type: ignore[arg-type]

    # --- blobs -----------------------------------------------------------------------------------

    def drop_unreferenced(self, keys: list[str]) -> int:
        """Delete these blobs unless a row references them (caller holds the lock)."""
        return self.blobs.delete_unreferenced(keys, self.db.artifacts.referenced_blob_keys(keys)) if keys else 0

    @contextmanager
    def adopted(self, staged: StagedBlob) -> Iterator[str]:
        """Move streamed bytes to their content address, pinned against the collector until the row referencing
        them has committed (the block's end); on failure leave no unreferenced bytes behind."""
        key = None
        try:
            with self.blobs.pinned(blob_key(staged.sha256)):
                key = self.blobs.adopt(staged)
                yield key
        except BaseException:
            self.blobs.discard(staged)
            if key is not None:
                with self.lock:
                    self.drop_unreferenced([key])
            raise

    @contextmanager
    def staged(self, data: bytes | None) -> Iterator[tuple[str, str] | None]:
        """Write file bytes before taking the lock (so a large upload doesn't stall everyone), shielded
        from the garbage collector until the row referencing them commits."""
        if data is None:
            yield None
            return
        key = None
        try:
            with self.blobs.staged(data) as staged:
                key = staged[0]
                yield staged
        except BaseException:
            # The write was refused (stale version, unknown id…): leave no unreferenced bytes behind.
            if key is not None:
                with self.lock:
                    self.drop_unreferenced([key])
            raise


def to_model(row: ArtifactRow, *, max_chars: int | None = None) -> Artifact:
    """The API model of a row, with its content cut to `max_chars` (0: no content)."""
    text = row.content_text if max_chars != 0 else None
    truncated = False
    if text is not None and max_chars is not None and len(text) > max_chars:
        text, truncated = text[:max_chars], True
    kind = row.content_kind
    if kind is None or text is None:
        content: JsonValue = None
    elif kind == "json" and truncated:
        content = None
    else:
        content = contentlib.text_to_content(kind, text)
    return Artifact(
        **{f: getattr(row, f) for f in _MODEL_FIELDS},
        content=content,
        content_text=text,
        content_truncated=truncated,
        uri=artifact_uri(row.artifact_id),
    )


def to_summary(row: ArtifactRow) -> ArtifactSummary:
    return ArtifactSummary(**{f: getattr(row, f) for f in _SUMMARY_FIELDS}, uri=artifact_uri(row.artifact_id))


SUMMARY_COLUMNS = tuple(f for f in _SUMMARY_FIELDS if f != "is_expired")
"""The catalog columns a search hit's summary is made of (`summary_of`)."""


def summary_of(fields: dict[str, Any]) -> ArtifactSummary:
    """`to_summary` from just the SUMMARY_COLUMNS of a row that a query found: queries see only unexpired chunks
    (recall.not_expired), so the artifact had not expired when it was found."""
    return ArtifactSummary(**fields, is_expired=False, uri=artifact_uri(fields["artifact_id"]))
