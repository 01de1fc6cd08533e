"""Request models of the REST mirror, derived from the MCP tools' input models so the two cannot drift.

A tool input carries the tenant scope (`org_id`, `workspace_id`, `namespace_id`) and sometimes the artifact id
as arguments; on the REST routes the path gives them instead. `without` copies a tool input model's fields
(with their limits, descriptions and field validators) minus those, keeping `extra="forbid"`.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

from fastapi import UploadFile
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Json, JsonValue, create_model, field_validator

from artifact_mcp.storage.models import MAX_KEYWORDS, MAX_TAGS, ArtifactType, Keyword, Tag
from artifact_mcp.tools.artifacts import (
    CreateArtifactInput,
    DeleteArtifactInput,
    GetArtifactInput,
    ListArtifactsInput,
    UpdateArtifactInput,
    UploadArtifactInput,
)
from artifact_mcp.tools.base import ScopeParams
from artifact_mcp.tools.download_links import GetDownloadUrlInput
from artifact_mcp.tools.generate import GenerateArtifactInput
from artifact_mcp.tools.query import PromoteArtifactInput, QueryArtifactsInput

SCOPE_FIELDS = frozenset(ScopeParams.model_fields)


def without(model: type[BaseModel], name: str, drop: frozenset[str] = frozenset(), *,
            base: type[BaseModel] | None = None, doc: str | None = None) -> type[BaseModel]:
    """`model`'s fields minus the scope fields and `drop`, with its field validators, as a new model. (Model-level
    rules are not copied: routes build the storage model from the body, which checks them.)"""
    gone = SCOPE_FIELDS | drop
    fields: dict[str, Any] = {
        key: (info.annotation, info) for key, info in model.model_fields.items() if key not in gone
    }
    validators: dict[str, Any] = {}
    for key, dec in model.__pydantic_decorators__.field_validators.items():
        kept = tuple(f for f in dec.info.fields if f not in gone)
        if kept:
            # A classmethod validator comes back bound to `model`: rebind it as a classmethod of the new model
            # (as it is, pydantic would take the class argument for the value and pass ValidationInfo as it).
            func = classmethod(dec.func.__func__) if inspect.ismethod(dec.func) else dec.func
            validators[key] = field_validator(*kept, mode=dec.info.mode)(func)
    kwargs: dict[str, Any] = {"__base__": base} if base is not None else {
        "__config__": ConfigDict(extra="forbid")}
    out = create_model(name, __doc__=doc or model.__doc__, __validators__=validators, **kwargs, **fields)
    return out


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


class _QueryBase(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- query parameters ------------------------------------------------------------------------------

_ListFields = without(ListArtifactsInput, "_ListFields", frozenset({"artifact_types", "tags"}), base=_QueryBase)


class ListParams(_ListFields):  # type: ignore[misc,valid-type]
    """Filters and page position of GET …/artifacts (query parameters)."""

    # A query string carries lists as repeated parameters; the MechaMental API also takes comma lists.
    artifact_types: CommaTypes = None
    tags: CommaTags = None


ThreadListParams = without(ListParams, "ThreadListParams", frozenset({"thread_id"}), base=_QueryBase)
GetParams = without(GetArtifactInput, "GetParams", frozenset({"artifact_id"}), base=_QueryBase)
DeleteParams = without(DeleteArtifactInput, "DeleteParams", frozenset({"artifact_id"}), base=_QueryBase)
DownloadUrlParams = without(GetDownloadUrlInput, "DownloadUrlParams", frozenset({"artifact_id"}), base=_QueryBase)

# --- JSON bodies -------------------------------------------------------------------------------------

CreateBody = without(CreateArtifactInput, "CreateArtifactBody",
                     doc="A new artifact from text or JSON content (POST …/artifacts).")
UpdateBody = without(UpdateArtifactInput, "UpdateArtifactBody", frozenset({"artifact_id"}),
                     doc="An update (PATCH …/artifacts/{artifact_id}): new content makes a new version, "
                         "anything else changes the latest version in place.")
QueryBody = without(QueryArtifactsInput, "QueryArtifactsBody", doc="A search (POST …/artifacts/query).")
GenerateBody = without(GenerateArtifactInput, "GenerateArtifactBody", frozenset({"idempotency_key"}),
                       doc="A document to generate (POST …/artifacts/generate); the key is the Idempotency-Key header.")
PromoteBody = without(PromoteArtifactInput, "PromoteArtifactBody", frozenset({"artifact_id"}),
                      doc="How to name the knowledge source (POST …/artifacts/{artifact_id}/promote).")

# --- multipart upload --------------------------------------------------------------------------------

_UploadFields = without(UploadArtifactInput, "_UploadFields",
                        frozenset({"data_base64", "path", "tags", "keywords", "metadata"}), base=_QueryBase)


class UploadForm(_UploadFields):  # type: ignore[misc,valid-type]
    """multipart/form-data of POST …/artifacts/upload: the `file` part plus descriptive fields."""

    file: UploadFile = Field(description="The file's bytes (streamed to the blob store).")
    tags: CommaTags = None
    keywords: CommaKeywords = None
    metadata: Json[dict[str, JsonValue]] | None = Field(
        None, description="Free JSON object as text, e.g. '{\"k\": 1}'; at most 64 KiB serialized.")
