"""How the REST dialects carry the use cases' bodies: query strings and forms, and the Aimable answers.

The bodies themselves are the use cases' (storage/usecases/bodies.py), used as they are; a query string or a form
only changes how lists and JSON arrive (comma lists, repeated parameters, JSON text), which these subclasses say.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import UploadFile
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Json, JsonValue

from artifact_mcp.storage.generate.models import GenerateSpec
from artifact_mcp.storage.models import (
    MAX_KEYWORDS,
    MAX_TAGS,
    Artifact,
    ArtifactStatus,
    ArtifactType,
    Keyword,
    ScopeId,
    Tag,
)
from artifact_mcp.storage.usecases.bodies import (
    ListBody,
    UploadFields,
)


def _split_commas(value: Any) -> Any:
    """`a,b` or repeated parameters (`?x=a&x=b`), or both: one flat list."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        return value
    out = [part.strip() for item in items for part in (item.split(",") if isinstance(item, str) else [item])]
    return [part for part in out if part != ""] or None


CommaTypes = Annotated[
    list[ArtifactType] | None, BeforeValidator(_split_commas),
    Field(description="Only these types: repeat the parameter or give a comma list, e.g. 'report,summary'."),
]
CommaTags = Annotated[
    Annotated[list[Tag], Field(max_length=MAX_TAGS)] | None, BeforeValidator(_split_commas),
    Field(description="Tags: repeat the field or give a comma list, e.g. 'q3,finance'."),
]
CommaKeywords = Annotated[
    Annotated[list[Keyword], Field(max_length=MAX_KEYWORDS)] | None, BeforeValidator(_split_commas),
    Field(description="Keywords: repeat the field or give a comma list."),
]

# --- MechaMental: query parameters and JSON bodies ---------------------------------------------------


class ListParams(ListBody):
    """Filters and page position of GET …/artifacts (query parameters)."""
    # A query string carries lists as repeated parameters; the MechaMental API also takes comma lists.
    artifact_types: CommaTypes = None
    tags: CommaTags = None


class UploadForm(UploadFields):
    """multipart/form-data of POST …/artifacts/upload: the `file` part plus descriptive fields."""

    file: UploadFile = Field(description="The file's bytes (streamed to the blob store).")
    tags: CommaTags = None
    keywords: CommaKeywords = None
    metadata: Json[dict[str, JsonValue]] | None = Field(
        None, description="Free JSON object as text, e.g. '{\"k\": 1}'; at most 64 KiB serialized.")

    def fields(self) -> UploadFields:
        """The use case's body (the form minus its file part)."""
        return UploadFields.model_validate(self.model_dump(exclude={"file"}))


# --- Aimable ---------------------------------------------------------------------------------------


class AimableListParams(BaseModel):
    """Filters and page position of GET /v1/spaces/{space_id}/artifacts."""

    model_config = ConfigDict(extra="forbid")

    thread_id: ScopeId | None = Field(None, description="Only artifacts of this thread.")
    document_type: ArtifactType | None = Field(None, description="Only this type (e.g. 'summary', 'report').")
    status: ArtifactStatus | None = None
    limit: int = Field(20, ge=1, le=100, description="Page size, 1-100.")
    cursor: str | None = Field(None, max_length=4096, description="`cursor` from the previous page.")

    def to_body(self) -> ListBody:
        return ListBody(thread_id=self.thread_id, artifact_types=[self.document_type] if self.document_type else None,
                        status=self.status, limit=self.limit, cursor=self.cursor)


class AimableArtifactItem(BaseModel):
    id: str
    document_type: str = Field(description="The artifact's type (for a generated document: summary, report…).")
    status: ArtifactStatus
    thread_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, a: Artifact) -> AimableArtifactItem:
        return cls(id=a.artifact_id, document_type=a.document_type or a.artifact_type, status=a.status,
                   thread_id=a.thread_id, created_at=a.created_at, updated_at=a.updated_at)


class AimableList(BaseModel):
    data: list[AimableArtifactItem]
    cursor: str | None = Field(description="Pass back as `cursor` for the next page; null on the last page.")


class AimableArtifact(AimableArtifactItem):
    file_size: int
    mime_type: str
    name: str
    version: int
    format: str | None = None
    file_name: str | None = None
    generation_error: str | None = None

    @classmethod
    def of(cls, a: Artifact) -> AimableArtifact:
        return cls(**AimableArtifactItem.of(a).model_dump(), file_size=a.size_bytes, mime_type=a.mime_type,
                   name=a.name, version=a.version, format=a.format, file_name=a.file_name,
                   generation_error=a.generation_error)


class AimableJob(BaseModel):
    job_id: str
    type: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None


class AimableGenerateBody(GenerateSpec):
    """POST /v1/spaces/{space_id}/artifacts/generate: `thread_id`, `document_type`, `format`, `options`
    (`include_transcript`, `branding`); `artifact_ids` and `query` add material as in the MechaMental API."""


class AimableGenerated(BaseModel):
    id: str
    document_type: str
    format: str | None
    status: ArtifactStatus
    thread_id: str | None
    created_at: datetime
