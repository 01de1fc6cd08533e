"""Recall tools: query_artifacts (hybrid search), promote_artifact, list_artifact_jobs."""

from __future__ import annotations

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.tools.base import Tool
from mcp.types import CallToolResult, ResourceLink, TextContent, ToolAnnotations

from artifact_mcp.storage.access import ScopeParams
from artifact_mcp.storage.models import JobList, PromoteRequest, PromoteResult, QueryRequest, QueryResult
from artifact_mcp.storage.usecases import recall
from artifact_mcp.storage.usecases.bodies import ArtifactRef
from artifact_mcp.tools.backend import Backend, access, progress_of
from artifact_mcp.tools.base import ToolInput, make_tool
from artifact_mcp.tools.viewer import viewer_meta


class QueryArtifactsInput(ToolInput, ScopeParams, QueryRequest):
    pass


class PromoteArtifactInput(ToolInput, ScopeParams, ArtifactRef, PromoteRequest):
    pass


class ListJobsInput(ToolInput, ScopeParams, ArtifactRef):
    pass


def _query_text(r: QueryResult) -> str:
    if not r.results:
        return f"No artifacts match {r.query!r} ({r.mode})."
    lines = [f"{len(r.results)} of {r.total_results} matching artifacts for {r.query!r} ({r.mode}):"]
    for i, h in enumerate(r.results, start=1):
        source = " [source]" if h.from_source else ""
        lines.append(f"{i}. {h.artifact.name} ({h.artifact.artifact_id}) score {h.score:.3f}{source}")
    if r.combined_context:
        lines += ["", r.combined_context]
    return "\n".join(lines)


def build_query_tools(backend: Backend) -> list[Tool]:
    async def query_artifacts(p: QueryArtifactsInput, ctx: Context) -> CallToolResult:
        """Search artifacts by meaning and keywords (hybrid: semantic + BM25), best first.

        Returns `results` (each: the artifact's metadata, `score` 0-1, `matched_chunk` with its character
        offsets in the artifact's text), `combined_context` (the best chunks within max_context_tokens, each
        headed by its artifact name and id: paste it into your reasoning and cite the ids) and
        `total_results`. Searches your namespace plus knowledge sources promoted anywhere in the workspace
        (include_sources=false to skip them). Filters: thread_id, artifact_types, tags, min_score.
        mode='keyword' for exact identifiers, 'semantic' for paraphrases. Artifacts written a moment ago
        are searchable once indexed (create with wait_for_index=true to be sure)."""
        result = await recall.query_artifacts(backend.store, access(backend, ctx, p, "read"), p, progress_of(ctx))
        content: list[TextContent | ResourceLink] = [TextContent(type="text", text=_query_text(result))]
        content += [
            ResourceLink(type="resource_link", uri=h.artifact.uri, name=h.artifact.name,
                         title=f"{h.artifact.name} (v{h.artifact.version})",
                         description=f"score {h.score:.3f} · {h.artifact.artifact_type}", mime_type="application/json")
            for h in result.results
        ]
        return CallToolResult(content=content, structured_content=result.model_dump(mode="json"))

    async def promote_artifact(p: PromoteArtifactInput, ctx: Context) -> CallToolResult:
        """Make an artifact a permanent knowledge source: pinned (TTL cleared, never expires) and searchable
        by query_artifacts from every namespace and thread of the workspace. Promoting again is harmless
        (returns the existing source)."""
        result = await recall.promote_artifact(backend.store, access(backend, ctx, p, "admin"), p.artifact_id, p)
        return CallToolResult(content=[TextContent(type="text", text=result.message)],
                              structured_content=result.model_dump(mode="json"))

    async def list_artifact_jobs(p: ListJobsInput, ctx: Context) -> CallToolResult:
        """List the background jobs (indexing) of an artifact's versions, newest first: job_id, type,
        status (queued/running/retrying/succeeded/failed/cancelled), attempts, error, timestamps."""
        jobs = await recall.list_jobs(backend.store, access(backend, ctx, p, "read"), p.artifact_id)
        lines = [f"{len(jobs.jobs)} job(s) for {jobs.root_artifact_id}"]
        lines += [f"- {j.job_id} {j.type} {j.status} (attempts {j.attempts})" + (f": {j.error}" if j.error else "")
                  for j in jobs.jobs]
        return CallToolResult(content=[TextContent(type="text", text="\n".join(lines))],
                              structured_content=jobs.model_dump(mode="json"))

    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                open_world_hint=False)
    return [
        make_tool(query_artifacts, name="query_artifacts", title="Search artifacts", input_model=QueryArtifactsInput,
                  output_model=QueryResult, annotations=read_only, meta=viewer_meta()),
        make_tool(promote_artifact, name="promote_artifact", title="Promote an artifact to a knowledge source",
                  input_model=PromoteArtifactInput, output_model=PromoteResult,
                  annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                              open_world_hint=False)),
        make_tool(list_artifact_jobs, name="list_artifact_jobs", title="List an artifact's jobs",
                  input_model=ListJobsInput, output_model=JobList, annotations=read_only),
    ]
