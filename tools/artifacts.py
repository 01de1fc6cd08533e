"""Artifact CRUD tools: list, get, create, upload, update, delete, list versions (thin: the use cases do the work)."""

from __future__ import annotations

from typing import ClassVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from mcp.types import CallToolResult, ToolAnnotations

from artifact_mcp.storage.access import ScopeParams
from artifact_mcp.storage.models import Artifact, ArtifactSummary, DeleteResult, SummaryPage, UpdateResult
from artifact_mcp.storage.usecases import artifacts as usecases
from artifact_mcp.storage.usecases.bodies import (
    ArtifactRef,
    CreateBody,
    DeleteOptions,
    ListBody,
    ReadOptions,
    UpdateBody,
    UploadBody,
    VersionList,
)
from artifact_mcp.tools.backend import Backend, access, progress_of
from artifact_mcp.tools.base import ToolInput, make_tool, tool_result
from artifact_mcp.tools.viewer import viewer_meta

# --- inputs: the scope plus the use case's body, composed ----------------------------------------------


class ListArtifactsInput(ToolInput, ScopeParams, ListBody):
    pass


class GetArtifactInput(ToolInput, ScopeParams, ArtifactRef, ReadOptions):
    pass


class CreateArtifactInput(ToolInput, ScopeParams, CreateBody):
    raw_string_fields: ClassVar[frozenset[str]] = frozenset({"content"})


class UploadArtifactInput(ToolInput, ScopeParams, UploadBody):
    pass


class UpdateArtifactInput(ToolInput, ScopeParams, ArtifactRef, UpdateBody):
    raw_string_fields: ClassVar[frozenset[str]] = frozenset({"content"})


class DeleteArtifactInput(ToolInput, ScopeParams, ArtifactRef, DeleteOptions):
    pass


class ListVersionsInput(ToolInput, ScopeParams, ArtifactRef):
    pass


# --- handlers --------------------------------------------------------------------------------------


def _describe(a: Artifact | ArtifactSummary) -> str:
    return f"'{a.name}' ({a.artifact_id}, v{a.version}, {a.artifact_type}, {a.mime_type}, {a.size_bytes} B)"


def _index_note(a: Artifact) -> str:
    if a.is_indexed:
        return f"; searchable ({a.chunk_count} chunks)"
    if a.status == "failed":
        return f"; indexing failed: {a.index_error}"
    return "; indexing in the background (status pending)"


def build_artifact_tools(backend: Backend) -> list[Tool]:
    async def list_artifacts(p: ListArtifactsInput, ctx: Context) -> CallToolResult:
        """List artifacts in a scope, newest first, with filters and cursor pagination.

        Returns `artifacts` (each one's card: name, type, size, tags, status, dates and a content preview;
        not its content, metadata or provenance), `total` matching, `has_more` and `next_cursor`; pass
        `next_cursor` back as `cursor` with the same filters for the next page. Use get_artifact for an
        artifact's content and all its metadata."""
        page = await usecases.list_summaries(backend.store, access(backend, ctx, p, "read"), p)
        lines = [f"{len(page.artifacts)} of {page.total} artifacts" + (" (more: pass next_cursor)" if page.has_more
                                                                        else "")]
        lines += [f"- {_describe(a)}" for a in page.artifacts]
        return tool_result(page, "\n".join(lines), page.artifacts)

    async def get_artifact(p: GetArtifactInput, ctx: Context) -> CallToolResult:
        """Get one artifact version: all its metadata plus its content.

        `content` is the text or JSON it was created with; `content_text` is the text of uploaded
        text-like files. Both are capped at `max_chars` (see `content_truncated`); read the resource
        `artifact://{id}/content` for the full bytes."""
        art = await usecases.get_artifact(backend.store, access(backend, ctx, p, "read"), p.artifact_id, p)
        text = _describe(art)
        if art.content_text is not None:
            text += "\n\n" + art.content_text
        return tool_result(art, text, [art])

    async def create_artifact(p: CreateArtifactInput, ctx: Context) -> CallToolResult:
        """Store a new artifact from text or JSON content (a report, summary, transcript, JSON result, code…).

        Returns the new artifact's metadata; its `artifact_id` is how you read, update or delete it later.
        Optional: thread_id, tags, metadata, ttl_seconds (auto-expire), is_pinned, provenance fields."""
        art = await usecases.create_artifact(backend.store, access(backend, ctx, p, "write"), p, progress_of(ctx))
        return tool_result(art, f"Created {_describe(art)}{_index_note(art)}", [art])

    async def upload_artifact(p: UploadArtifactInput, ctx: Context) -> CallToolResult:
        """Store a file as an artifact: its bytes as base64 in `data_base64`, or a server-side `path`.

        Paths must be absolute and inside the server's allowed roots. The mime type is detected from the
        bytes and file name unless given; text files also get `content_text` for reading and search.
        The file name is stored as a safe base name (no directory part)."""
        art = await usecases.upload_artifact(backend.store, access(backend, ctx, p, "write"), p,
                                             allowed_roots=backend.allowed_roots,
                                             max_upload_bytes=backend.max_upload_bytes, progress=progress_of(ctx))
        return tool_result(art, f"Uploaded {_describe(art)}{_index_note(art)}", [art])

    async def update_artifact(p: UpdateArtifactInput, ctx: Context) -> CallToolResult:
        """Change an artifact. New `content` or `data_base64` creates a new version (new artifact_id, same
        root_artifact_id, version+1; the old version stays readable). Changing only metadata (name, tags,
        metadata, summary, status, is_pinned, ttl_seconds, clear_ttl…) updates the latest version in place.
        Pass `expected_version` to fail instead of overwriting someone else's newer version."""
        result = await usecases.update_artifact(backend.store, access(backend, ctx, p, "write"), p.artifact_id, p,
                                                max_upload_bytes=backend.max_upload_bytes, progress=progress_of(ctx))
        verb = "New version" if result.new_version else "Updated in place"
        return tool_result(result, f"{verb}: {_describe(result.artifact)}", [result.artifact])

    async def delete_artifact(p: DeleteArtifactInput, ctx: Context) -> CallToolResult:
        """Delete an artifact: all its versions (default), or with all_versions=false only the given version
        (the previous one becomes latest). Files no longer referenced are removed. This cannot be undone."""
        result = await usecases.delete_artifact(backend.store, access(backend, ctx, p, "write"), p.artifact_id, p)
        text = f"Deleted {len(result.deleted_artifact_ids)} version(s); {result.remaining_versions} remain"
        return tool_result(result, text)

    async def list_artifact_versions(p: ListVersionsInput, ctx: Context) -> CallToolResult:
        """List every version of an artifact, oldest first (version, artifact_id, is_latest,
        replaced_by_version, timestamps, size)."""
        out = await usecases.list_versions(backend.store, access(backend, ctx, p, "read"), p.artifact_id)
        lines = [f"{out.total} version(s) of {out.root_artifact_id}"]
        lines += [f"- v{v.version} {v.artifact_id}" + (" (latest)" if v.is_latest else "") for v in out.versions]
        return tool_result(out, "\n".join(lines), out.versions)

    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                open_world_hint=False)
    return [
        make_tool(list_artifacts, name="list_artifacts", title="List artifacts", input_model=ListArtifactsInput,
                  output_model=SummaryPage, annotations=read_only),
        make_tool(get_artifact, name="get_artifact", title="Get an artifact", input_model=GetArtifactInput,
                  output_model=Artifact, annotations=read_only, meta=viewer_meta()),
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
                  input_model=ListVersionsInput, output_model=VersionList, annotations=read_only,
                  meta=viewer_meta()),
    ]
