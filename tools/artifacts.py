"""Artifact CRUD tools: list, get, create, upload, update, delete, list versions."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, ClassVar, Protocol

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, Field, JsonValue, field_validator

from artifact_mcp.storage.access import Permission, Principal
from artifact_mcp.storage.errors import InvalidInput, TooLarge
from artifact_mcp.storage.models import (
    MAX_NAME_CHARS,
    MAX_TAGS,
    Artifact,
    ArtifactFields,
    ArtifactId,
    ArtifactPage,
    ArtifactPatch,
    ArtifactStatus,
    ArtifactType,
    DeleteResult,
    ListQuery,
    Name,
    NewArtifact,
    NewFileArtifact,
    Provenance,
    Scope,
    ScopeId,
    Tag,
    UpdateResult,
)
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.paths import open_allowed_file
from artifact_mcp.storage.services.reads import DEFAULT_MAX_CHARS
from artifact_mcp.tools.base import ScopeParams, ToolInput, make_tool, tool_result


class Backend(Protocol):
    """What the tools need from the running server."""

    @property
    def store(self) -> StoreClient: ...
    @property
    def default_scope(self) -> Scope: ...
    @property
    def allowed_roots(self) -> list[str]: ...
    @property
    def max_upload_bytes(self) -> int: ...
    def principal(self, ctx: Context) -> Principal: ...
    def authorize(self, ctx: Context, params: Any, need: Permission) -> Scope: ...


def _author(backend: Backend, ctx: Context, claimed: str | None) -> str | None:
    """`created_by`/`updated_by`: an authenticated caller is recorded as its principal, whatever it claims."""
    principal = backend.principal(ctx)
    return claimed if principal.trusted else principal.principal_id


def _content_value(value: Any) -> Any:
    if value is None or isinstance(value, str | dict | list):
        return value
    raise ValueError(
        f"content must be text (a JSON string) or structured JSON (an object or array), not {type(value).__name__}; "
        "wrap a scalar in an object, e.g. {\"value\": 42}"
    )


def decode_base64(data: str, limit: int) -> bytes:
    # Reject by size before decoding, so an oversize upload costs nothing.
    approx = len(data) * 3 // 4
    if approx > limit + 3:
        raise TooLarge(
            f"data is about {approx} bytes decoded, over the {limit}-byte limit (ARTIFACT_MCP_MAX_UPLOAD_BYTES)"
        )
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            "data_base64 is not valid base64 (standard alphabet A-Z a-z 0-9 + /, '=' padding, no line breaks)"
        ) from None


# --- inputs --------------------------------------------------------------------------------------


class ListArtifactsInput(ToolInput, ScopeParams):
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
    cursor: str | None = Field(None, description="next_cursor from the previous page, with the same filters.")

    @field_validator("artifact_types", mode="after")
    @classmethod
    def _split_types(cls, value: list[str] | str | None) -> list[str] | None:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()] or None
        return value


class GetArtifactInput(ToolInput, ScopeParams):
    artifact_id: ArtifactId
    include_expired: bool = Field(False, description="Return it even if its TTL has passed.")
    max_chars: int = Field(DEFAULT_MAX_CHARS, ge=0, le=1_000_000,
                           description="Cap on returned content/content_text characters (0 = metadata only).")


class WaitParams(BaseModel):
    wait_for_index: bool = Field(
        False, description="Return only once the artifact is searchable by query_artifacts (progress notifications "
        "meanwhile). By default the call returns at once with status 'pending' and indexing runs in the background.",
    )
    wait_timeout_seconds: float = Field(120.0, gt=0, le=600, description="Longest wait for wait_for_index.")


class CreateArtifactInput(ToolInput, ScopeParams, WaitParams, ArtifactFields):
    raw_string_fields: ClassVar[frozenset[str]] = frozenset({"content"})

    name: Name
    content: str | dict[str, JsonValue] | list[JsonValue] = Field(
        description="The artifact body: text (markdown, code, prose…) or a JSON object/array."
    )
    artifact_type: ArtifactType = "document"
    mime_type: str | None = Field(None, max_length=255,
                                  description="Defaults to text/plain for text, application/json for JSON.")
    file_name: str | None = Field(None, max_length=MAX_NAME_CHARS)
    status: ArtifactStatus | None = Field(
        None, description="Leave unset: 'pending' until indexed for search, then 'ready' ('failed' if indexing gave "
        "up). 'archived' is kept as set."
    )
    created_by: Provenance = None

    _check_content = field_validator("content", mode="before")(_content_value)


class UploadArtifactInput(ToolInput, ScopeParams, WaitParams, ArtifactFields):
    name: Annotated[str | None, Field(None, min_length=1, max_length=MAX_NAME_CHARS,
                                      description="Defaults to the file name.")]
    data_base64: str | None = Field(None, description="The file's bytes, base64-encoded. Give this or `path`.")
    path: str | None = Field(
        None, max_length=4096,
        description="Absolute path of a file on the server, under one of its allowed roots. Give this or data_base64.",
    )
    file_name: str | None = Field(None, max_length=MAX_NAME_CHARS)
    mime_type: str | None = Field(None, max_length=255, description="Detected from bytes and file name if omitted.")
    artifact_type: ArtifactType = "file"
    status: ArtifactStatus | None = Field(
        None, description="Leave unset: 'pending' until indexed for search, then 'ready' ('failed' if indexing gave "
        "up). 'archived' is kept as set."
    )
    created_by: Provenance = None


class UpdateArtifactInput(ToolInput, ScopeParams, WaitParams, ArtifactFields):
    raw_string_fields: ClassVar[frozenset[str]] = frozenset({"content"})

    artifact_id: ArtifactId = Field(description="Any version id of the artifact; the latest version is updated.")
    expected_version: int | None = Field(
        None, ge=1, description="Fail unless the latest version is still this one (guards against lost updates)."
    )
    name: Name | None = None
    content: str | dict[str, JsonValue] | list[JsonValue] | None = Field(
        None, description="New content: creates a new version."
    )
    data_base64: str | None = Field(None, description="New file bytes (base64): creates a new version.")
    file_name: str | None = Field(None, max_length=MAX_NAME_CHARS)
    mime_type: str | None = Field(None, max_length=255)
    artifact_type: ArtifactType | None = None
    status: ArtifactStatus | None = None
    clear_ttl: bool = Field(False, description="Remove the TTL so the artifact no longer expires.")
    updated_by: Provenance = None

    _check_content = field_validator("content", mode="before")(_content_value)


class DeleteArtifactInput(ToolInput, ScopeParams):
    artifact_id: ArtifactId
    all_versions: bool = Field(True, description="Delete every version (default) or only this version.")


class ListVersionsInput(ToolInput, ScopeParams):
    artifact_id: ArtifactId = Field(description="Any version id of the artifact.")


class VersionList(BaseModel):
    root_artifact_id: str
    versions: list[Artifact] = Field(description="Oldest first.")
    total: int


# --- handlers --------------------------------------------------------------------------------------


def _fields(params: BaseModel) -> dict[str, Any]:
    return params.model_dump(include=set(ArtifactFields.model_fields))


def _describe(a: Artifact) -> str:
    return f"'{a.name}' ({a.artifact_id}, v{a.version}, {a.artifact_type}, {a.mime_type}, {a.size_bytes} B)"


async def _await_index(backend: Backend, scope: Scope, art: Artifact, p: WaitParams, ctx: Context) -> Artifact:
    if not p.wait_for_index or art.is_indexed:
        return art

    async def progress(state: str, fraction: float) -> None:
        await ctx.report_progress(fraction, 1.0, f"indexing: {state}")

    return await backend.store.wait_indexed(scope, art.artifact_id, p.wait_timeout_seconds, progress)


def _index_note(a: Artifact) -> str:
    if a.is_indexed:
        return f"; searchable ({a.chunk_count} chunks)"
    if a.status == "failed":
        return f"; indexing failed: {a.index_error}"
    return "; indexing in the background (status pending)"


def build_artifact_tools(backend: Backend) -> list[Tool]:
    async def list_artifacts(p: ListArtifactsInput, ctx: Context) -> CallToolResult:
        """List artifacts in a scope, newest first, with filters and cursor pagination.

        Returns `artifacts` (metadata and a content preview, not the full content), `total` matching,
        `has_more` and `next_cursor`; pass `next_cursor` back as `cursor` with the same filters for the
        next page. Use get_artifact for an artifact's content."""
        query = ListQuery(
            thread_id=p.thread_id, artifact_types=p.artifact_types, status=p.status, tags=p.tags,
            created_by=p.created_by, include_expired=p.include_expired, latest_only=p.latest_only,
            limit=p.limit, cursor=p.cursor,
        )
        page = await backend.store.list(backend.authorize(ctx, p, "read"), query)
        lines = [f"{len(page.artifacts)} of {page.total} artifacts" + (" (more: pass next_cursor)" if page.has_more
                                                                        else "")]
        lines += [f"- {_describe(a)}" for a in page.artifacts]
        return tool_result(page, "\n".join(lines), page.artifacts)

    async def get_artifact(p: GetArtifactInput, ctx: Context) -> CallToolResult:
        """Get one artifact version: all its metadata plus its content.

        `content` is the text or JSON it was created with; `content_text` is the text of uploaded
        text-like files. Both are capped at `max_chars` (see `content_truncated`); read the resource
        `artifact://{id}/content` for the full bytes."""
        art = await backend.store.get(backend.authorize(ctx, p, "read"), p.artifact_id,
                                      include_expired=p.include_expired, max_chars=p.max_chars)
        text = _describe(art)
        if art.content_text is not None:
            text += "\n\n" + art.content_text
        return tool_result(art, text, [art])

    async def create_artifact(p: CreateArtifactInput, ctx: Context) -> CallToolResult:
        """Store a new artifact from text or JSON content (a report, summary, transcript, JSON result, code…).

        Returns the new artifact's metadata; its `artifact_id` is how you read, update or delete it later.
        Optional: thread_id, tags, metadata, ttl_seconds (auto-expire), is_pinned, provenance fields."""
        new = NewArtifact(**_fields(p), name=p.name, artifact_type=p.artifact_type, status=p.status,
                          content=p.content, file_name=p.file_name, mime_type=p.mime_type,
                          created_by=_author(backend, ctx, p.created_by))
        scope = backend.authorize(ctx, p, "write")
        art = await _await_index(backend, scope, await backend.store.create(scope, new), p, ctx)
        return tool_result(art, f"Created {_describe(art)}{_index_note(art)}", [art])

    async def upload_artifact(p: UploadArtifactInput, ctx: Context) -> CallToolResult:
        """Store a file as an artifact: its bytes as base64 in `data_base64`, or a server-side `path`.

        Paths must be absolute and inside the server's allowed roots. The mime type is detected from the
        bytes and file name unless given; text files also get `content_text` for reading and search."""
        scope = backend.authorize(ctx, p, "write")
        if (p.data_base64 is None) == (p.path is None):
            raise InvalidInput("give exactly one of data_base64 (the bytes, base64) or path (a server file)")
        file_name = p.file_name
        author = _author(backend, ctx, p.created_by)
        if p.data_base64 is not None:
            data = decode_base64(p.data_base64, backend.max_upload_bytes)
            name = p.name or file_name
            if not name:
                raise InvalidInput("name is required when no file_name is given")
            await ctx.report_progress(0.5, 1.0, "storing")
            new = NewArtifact(**_fields(p), name=name, artifact_type=p.artifact_type, status=p.status, data=data,
                              file_name=file_name, mime_type=p.mime_type, created_by=author)
            art = await backend.store.create(scope, new)
        else:
            # A server file goes to the blob store in pieces, never whole in memory.
            assert p.path is not None
            file, base_name = await anyio.to_thread.run_sync(
                open_allowed_file, p.path, backend.allowed_roots, backend.max_upload_bytes
            )
            with file:
                file_name = file_name or base_name
                await ctx.report_progress(0.5, 1.0, "storing")
                new_file = NewFileArtifact(**_fields(p), name=p.name or file_name, artifact_type=p.artifact_type,
                                           status=p.status, file_name=file_name, mime_type=p.mime_type,
                                           created_by=author)
                art = await backend.store.create_from_stream(scope, new_file, file)
        await ctx.report_progress(1.0, 1.0, "stored")
        art = await _await_index(backend, scope, art, p, ctx)
        return tool_result(art, f"Uploaded {_describe(art)}{_index_note(art)}", [art])

    async def update_artifact(p: UpdateArtifactInput, ctx: Context) -> CallToolResult:
        """Change an artifact. New `content` or `data_base64` creates a new version (new artifact_id, same
        root_artifact_id, version+1; the old version stays readable). Changing only metadata (name, tags,
        metadata, summary, status, is_pinned, ttl_seconds, clear_ttl…) updates the latest version in place.
        Pass `expected_version` to fail instead of overwriting someone else's newer version."""
        scope = backend.authorize(ctx, p, "write")
        if p.content is not None and p.data_base64 is not None:
            raise InvalidInput("give either content or data_base64, not both")
        data = decode_base64(p.data_base64, backend.max_upload_bytes) if p.data_base64 is not None else None
        patch = ArtifactPatch(
            **_fields(p), name=p.name, artifact_type=p.artifact_type, status=p.status, content=p.content,
            data=data, file_name=p.file_name, mime_type=p.mime_type, clear_ttl=p.clear_ttl,
            expected_version=p.expected_version, updated_by=_author(backend, ctx, p.updated_by),
        )
        result: UpdateResult = await backend.store.update(scope, p.artifact_id, patch)
        if result.new_version:
            result.artifact = await _await_index(backend, scope, result.artifact, p, ctx)
        verb = "New version" if result.new_version else "Updated in place"
        return tool_result(result, f"{verb}: {_describe(result.artifact)}", [result.artifact])

    async def delete_artifact(p: DeleteArtifactInput, ctx: Context) -> CallToolResult:
        """Delete an artifact: all its versions (default), or with all_versions=false only the given version
        (the previous one becomes latest). Files no longer referenced are removed. This cannot be undone."""
        result: DeleteResult = await backend.store.delete(backend.authorize(ctx, p, "write"), p.artifact_id,
                                                          all_versions=p.all_versions)
        text = f"Deleted {len(result.deleted_artifact_ids)} version(s); {result.remaining_versions} remain"
        return tool_result(result, text)

    async def list_artifact_versions(p: ListVersionsInput, ctx: Context) -> CallToolResult:
        """List every version of an artifact, oldest first (version, artifact_id, is_latest,
        replaced_by_version, timestamps, size)."""
        versions = await backend.store.versions(backend.authorize(ctx, p, "read"), p.artifact_id)
        out = VersionList(root_artifact_id=versions[0].root_artifact_id, versions=versions, total=len(versions))
        lines = [f"{len(versions)} version(s) of {versions[0].root_artifact_id}"]
        lines += [f"- v{v.version} {v.artifact_id}" + (" (latest)" if v.is_latest else "") for v in versions]
        return tool_result(out, "\n".join(lines), versions)

    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                open_world_hint=False)
    return [
        make_tool(list_artifacts, name="list_artifacts", title="List artifacts", input_model=ListArtifactsInput,
                  output_model=ArtifactPage, annotations=read_only),
        make_tool(get_artifact, name="get_artifact", title="Get an artifact", input_model=GetArtifactInput,
                  output_model=Artifact, annotations=read_only),
        make_tool(create_artifact, name="create_artifact", title="Create an artifact",
                  input_model=CreateArtifactInput, output_model=Artifact,
                  annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                              idempotent_hint=False, open_world_hint=False)),
        make_tool(upload_artifact, name="upload_artifact", title="Upload a file as an artifact",
                  input_model=UploadArtifactInput, output_model=Artifact,
                  annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                              idempotent_hint=False, open_world_hint=False)),
        make_tool(update_artifact, name="update_artifact", title="Update an artifact",
                  input_model=UpdateArtifactInput, output_model=UpdateResult,
                  annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True,
                                              idempotent_hint=False, open_world_hint=False)),
        make_tool(delete_artifact, name="delete_artifact", title="Delete an artifact",
                  input_model=DeleteArtifactInput, output_model=DeleteResult,
                  annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True,
                                              idempotent_hint=True, open_world_hint=False)),
        make_tool(list_artifact_versions, name="list_artifact_versions", title="List an artifact's versions",
                  input_model=ListVersionsInput, output_model=VersionList, annotations=read_only),
    ]
