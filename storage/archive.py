"""The portable archive's records: one `ArchivedVersion` per line of manifest.jsonl, and archive.json.

An archive is a directory or a tar (optionally gzip) holding `archive.json` (`ArchiveHeader`), `manifest.jsonl`
(one `ArchivedVersion` per line, oldest first) and `blobs/<sha256>` (each file version's bytes, once per
distinct hash). A version's index state (chunks, embeddings, is_indexed...) is not archived: a restore
re-indexes, with whatever embedding model the target store uses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from artifact_mcp.storage.models import ArtifactId, ScopeId

ARCHIVE_FORMAT = "artifact-mcp-archive"
ARCHIVE_VERSION = 1
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class ArchivedVersion(BaseModel):
    """One artifact version as the catalog holds it, less its index state and version links (a restore
    derives `is_latest` and `replaced_by_version` from the versions it holds)."""

    model_config = ConfigDict(extra="forbid")

    artifact_id: ArtifactId
    root_artifact_id: ArtifactId
    version: int = Field(ge=1)
    org_id: ScopeId
    workspace_id: ScopeId
    namespace_id: ScopeId
    thread_id: str | None = None
    name: str
    description: str | None = None
    artifact_type: str
    content_kind: str | None = None
    content_preview: str | None = None
    content_text: str | None = None
    file_name: str | None = None
    mime_type: str
    size_bytes: int = Field(ge=0)
    sha256: str | None = Field(None, pattern=SHA256_PATTERN)
    has_file: bool
    summary: str | None = None
    keywords: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None
    source_execution_id: str | None = None
    source_step_id: str | None = None
    source_tool: str | None = None
    scope: str
    status: str
    ttl_seconds: int | None = None
    expires_at: datetime | None = None
    is_pinned: bool = False
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime
    document_type: str | None = None
    format: str | None = None
    generation_error: str | None = None

    @model_validator(mode="after")
    def _file_has_hash(self) -> ArchivedVersion:
        if self.has_file != (self.sha256 is not None):
            raise ValueError("has_file and sha256 disagree: a file version needs its blob's sha256, a text one none")
        return self


class ArchiveHeader(BaseModel):
    """archive.json, written last: an archive without it (or whose counts differ) is incomplete."""

    format: Literal["artifact-mcp-archive"] = ARCHIVE_FORMAT
    format_version: int = ARCHIVE_VERSION
    created_at: datetime
    scope: str = Field(description="The org/workspace/namespace the archive was exported from.")
    versions: int = Field(ge=0, description="Lines of manifest.jsonl.")
    blobs: int = Field(ge=0, description="Files under blobs/.")
    manifest_sha256: str = Field(pattern=SHA256_PATTERN, description="sha256 of manifest.jsonl as written.")


class VersionIdentity(BaseModel):
    """What makes a stored version the same as an archived one of the same id (its content never changes)."""

    artifact_id: str
    root_artifact_id: str
    version: int
    sha256: str | None
    org_id: str
    workspace_id: str
    namespace_id: str

    @classmethod
    def of(cls, v: BaseModel) -> VersionIdentity:
        return cls.model_validate({k: getattr(v, k) for k in cls.model_fields})


class RestoreOutcome(BaseModel):
    """What restoring one archived version did."""

    artifact_id: str
    outcome: Literal["restored", "present"]


class ImportedFile(BaseModel):
    """The latest version of an artifact an import made from a file (metadata `IMPORT_KEY` = the file's path)."""

    path: str
    artifact_id: str
    version: int
    sha256: str | None


# The metadata key an import records a file's absolute path under: how a re-import finds what it made.
IMPORT_KEY = "imported_from"
