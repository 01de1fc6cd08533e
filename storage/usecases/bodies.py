"""The request bodies of the use cases: scope-free pydantic models, the one source of truth for every door.

A tool's input is a scope model plus one of these, composed (`class CreateArtifactInput(ToolInput, ScopeParams,
CreateBody)`); a REST route takes the same body, its scope from the path. Limits, descriptions and validators are
written once, here or in storage/models.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, JsonValue, field_validator

from artifact_mcp.storage.generate.models import GenerateSpec
from artifact_mcp.storage.links import DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN, MIN_EXPIRES_IN
from artifact_mcp.storage.models import (
    DEFAULT_MAX_CHARS,
    MAX_TAGS,
    Artifact,
    ArtifactFields,
    ArtifactId,
    ArtifactStatus,
    ArtifactType,
    FileNameField,
    ListQuery,
    MimeType,
    Name,
    Provenance,
    ScopeId,
    Tag,
)
from artifact_mcp.storage.text import CleanInput


def content_value(value: Any) -> Any:
    if value is None or isinstance(value, str | dict | list):
        return value
    raise ValueError(
        f"content must be text (a JSON string) or structured JSON (an object or array), not {type(value).__name__}; "
        "wrap a scalar in an object, e.g. {\"value\": 42}"
    )


class ArtifactRef(CleanInput):
    artifact_id: ArtifactId = Field(description="Any version id of the artifact, e.g. 'art_3f2a…'.")


class WaitParams(CleanInput):
    wait_for_index: bool = Field(
        False, description="Return only once the artifact is searchable by query_artifacts (progress notifications "
        "meanwhile). By default the call returns at once with status 'pending' and indexing runs in the background.",
    )
    wait_timeout_seconds: float = Field(120.0, gt=0, le=600, description="Longest wait for wait_for_index.")


class ListBody(CleanInput):
    """Filters and page position of a listing."""

    thread_id: ScopeId | None = Field(None, description="Only artifacts of this thread.")
    artifact_types: list[ArtifactType] | str | None = Field(
        None, description="Only these types: a list or a comma-separated string, e.g. 'report,summary'."
    )
    status: ArtifactStatus | None = None
    tags: Annotated[list[Tag] | None, Field(max_length=MAX_TAGS,
                                            description="Only artifacts carrying all of these tags.")] = None
    created_by: Provenance = None
    include_expired: bool = Field(False, description="Also list artifacts whose TTL has passed.")
    latest_only: bool = Field(True, description="Only the latest version of each artifact.")
    limit: int = Field(50, ge=1, le=200, description="Page size, 1-200.")
    cursor: str | None = Field(None, max_length=4096,
                               description="next_cursor from the previous page, with the same filters.")

    @field_validator("artifact_types", mode="after")
    @classmethod
    def _split_types(cls, value: list[str] | str | None) -> list[str] | None:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()] or None
        return value

    def to_query(self, thread_id: str | None = None) -> ListQuery:
        data = self.model_dump(include=set(ListQuery.model_fields))
        if thread_id is not None:
            data["thread_id"] = thread_id
        return ListQuery.model_validate(data)


class ReadOptions(CleanInput):
    include_expired: bool = Field(False, description="Return it even if its TTL has passed.")
    max_chars: int = Field(DEFAULT_MAX_CHARS, ge=0, le=1_000_000,
                           description="Cap on returned content/content_text characters (0 = metadata only).")


class CreateBody(WaitParams, ArtifactFields):
    """A new artifact from text or JSON content."""

    name: Name
    content: str | dict[str, JsonValue] | list[JsonValue] = Field(
        description="The artifact body: text (markdown, code, prose…) or a JSON object/array."
    )
    artifact_type: ArtifactType = "document"
    mime_type: MimeType = Field(None, description="Defaults to text/plain for text, application/json for JSON.")
    file_name: FileNameField = None
    status: ArtifactStatus | None = Field(
        None, description="Leave unset: 'pending' until indexed for search, then 'ready' ('failed' if indexing gave "
        "up). 'archived' is kept as set."
    )
    created_by: Provenance = None

    _check_content = field_validator("content", mode="before")(content_value)


class UploadFields(WaitParams, ArtifactFields):
    """The descriptive fields of a file upload (the bytes come beside them: base64, a server path, a multipart
    part)."""

    name: Annotated[Name | None, Field(description="Defaults to the file name.")] = None
    file_name: FileNameField = Field(None, description="Reduced to a safe base name (no directories).")
    mime_type: MimeType = Field(None, description="Detected from bytes and file name if omitted.")
    artifact_type: ArtifactType = "file"
    status: ArtifactStatus | None = Field(
        None, description="Leave unset: 'pending' until indexed for search, then 'ready' ('failed' if indexing gave "
        "up). 'archived' is kept as set."
    )
    created_by: Provenance = None


class UploadBody(UploadFields):
    """A file upload whose bytes come as base64 or from a server path (the upload_artifact tool)."""

    data_base64: str | None = Field(None, description="The file's bytes, base64-encoded. Give this or `path`.")
    path: str | None = Field(
        None, max_length=4096,
        description="Absolute path of a file on the server, under one of its allowed roots. Give this or data_base64.",
    )


class UpdateBody(WaitParams, ArtifactFields):
    """An update: new content makes a new version, anything else changes the latest version in place."""

    expected_version: int | None = Field(
        None, ge=1, description="Fail unless the latest version is still this one (guards against lost updates)."
    )
    name: Name | None = None
    content: str | dict[str, JsonValue] | list[JsonValue] | None = Field(
        None, description="New content: creates a new version."
    )
    data_base64: str | None = Field(None, description="New file bytes (base64): creates a new version.")
    file_name: FileNameField = None
    mime_type: MimeType = Field(
        None, description="Of the new content. Omitted: new text or JSON keeps the previous version's type when that "
        "was text or JSON too (else text/plain or application/json); new file bytes are detected."
    )
    artifact_type: ArtifactType | None = None
    status: ArtifactStatus | None = None
    clear_ttl: bool = Field(False, description="Remove the TTL so the artifact no longer expires.")
    updated_by: Provenance = None

    _check_content = field_validator("content", mode="before")(content_value)


class DeleteOptions(CleanInput):
    all_versions: bool = Field(True, description="Delete every version (default) or only this version.")


class DownloadUrlOptions(CleanInput):
    expires_in: int = Field(DEFAULT_EXPIRES_IN, ge=MIN_EXPIRES_IN, le=MAX_EXPIRES_IN,
                            description=f"Seconds the link stays valid, {MIN_EXPIRES_IN}-{MAX_EXPIRES_IN} "
                                        f"(default {DEFAULT_EXPIRES_IN}).")


class GenerateBody(GenerateSpec):
    """A document to generate, and whether to wait for it."""

    wait: bool = Field(
        False, description="Return only when the document is written (status 'completed' or 'failed'), with progress "
                           "notifications meanwhile. By default the call returns at once with status 'processing'.",
    )
    wait_timeout_seconds: float = Field(300.0, gt=0, le=600, description="Longest wait for wait=true.")


# --- answers that are not storage models -----------------------------------------------------------


class VersionList(BaseModel):
    root_artifact_id: str
    versions: list[Artifact] = Field(description="Oldest first.")
    total: int


class DownloadUrl(BaseModel):
    artifact_id: str
    download_url: str = Field(description="GET it (no token needed: the link is the credential); honours Range.")
    expires_in: int = Field(description="Seconds the link stays valid from now.")
    expires_at: datetime | None = Field(None, description="When it stops working (None: a local file path).")
    file_name: str
    content_type: str
    file_size_bytes: int
    note: str | None = None
