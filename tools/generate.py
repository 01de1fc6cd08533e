"""generate_artifact: a summary, report, transcript or digest of artifacts, as Markdown, HTML, JSON or PDF.

Who writes the text: when the client offers MCP sampling, its own model (the server holds no model keys); else
the server's extractive summarizer, so the tool always works offline. Sampling needs the client's session, so it
happens in the call, before the request is handed to the store: an SDK resolver asks the question in whatever way
the protocol era wants (2025-11-25: a `sampling/createMessage` request mid-call; 2026-07-28: an
`InputRequiredResult` round trip). Its answer (a Markdown draft) travels with the request to the generation job,
which composes, renders and stores the document in the background.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Sample
from mcp.server.mcpserver.tools.base import Tool
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp.types import (
    CallToolResult,
    CreateMessageRequest,
    CreateMessageResult,
    SamplingMessage,
    TextContent,
    ToolAnnotations,
)
from mcp_types.version import is_version_at_least

from artifact_mcp.storage.access import ScopeParams
from artifact_mcp.storage.errors import StoreError
from artifact_mcp.storage.generate.models import Draft, GenerateOptions, GenerateResult, IdempotencyKey
from artifact_mcp.storage.usecases.bodies import GenerateBody
from artifact_mcp.storage.usecases.generation import generate_artifact as generate
from artifact_mcp.storage.usecases.generation import material_to_write, request_of
from artifact_mcp.tools.backend import Backend, access, progress_of
from artifact_mcp.tools.base import ToolInput, make_tool, tool_result

log = logging.getLogger(__name__)

_INPUT_REQUIRED_ERA = "2026-07-28"


class GenerateArtifactInput(ToolInput, ScopeParams, GenerateBody):
    idempotency_key: IdempotencyKey | None = None


def _draft(result: Any) -> Draft | None:
    if isinstance(result, CreateMessageResult) and isinstance(result.content, TextContent):
        return Draft(text=result.content.text, model=result.model)
    return None


def _summary_text(r: GenerateResult) -> str:
    a, j = r.artifact, r.job
    head = "Already generated under this idempotency_key: " if r.reused else ""
    state = {"processing": "being generated", "completed": "ready", "failed": f"FAILED: {a.generation_error}"}
    return (f"{head}{a.document_type} '{a.name}' ({a.format}, {a.artifact_id}) is {state.get(a.status, a.status)}. "
            f"Job {j.job_id} ({j.type}) is {j.status}. Writer: {r.writer}. "
            f"Sources: {', '.join(a.metadata.get('sources', []))}.")


def build_generate_tools(backend: Backend) -> list[Tool]:
    async def client_draft(
        ctx: Context, document_type: str, format: str, thread_id: str | None, artifact_ids: list[str] | None,
        query: str | None, top_k: int, options: GenerateOptions, idempotency_key: str | None,
        org_id: str | None, workspace_id: str | None, namespace_id: str | None,
    ) -> Sample | CreateMessageResult | None:
        """Ask the client's model to write the document, when the client can sample and the type needs writing.
        Skipped for a transcript (verbatim), and for a replayed idempotency key (the first call's text stands)."""
        caps = ctx.client_capabilities
        if document_type == "transcript" or caps is None or caps.sampling is None:
            return None
        spec = GenerateBody(document_type=document_type, format=format, thread_id=thread_id,  # type: ignore[arg-type]
                            artifact_ids=artifact_ids, query=query, top_k=top_k, options=options)
        req = request_of(spec, idempotency_key)
        try:
            scoped = access(backend, ctx, ScopeParams(org_id=org_id, workspace_id=workspace_id,
                                                      namespace_id=namespace_id), "write")
            material = await material_to_write(backend.store, scoped, req)
        except StoreError as exc:
            raise ToolError(exc.message) from exc
        if material is None:
            return None
        # Imported here: Markdown parsing and the extractive writer are not needed before a document is written.
        from artifact_mcp.storage.generate.compose import prompt

        system, text = prompt(req, material.items)
        sample = Sample([SamplingMessage(role="user", content=TextContent(type="text", text=text))],
                        max_tokens=min(16_000, req.max_words * 3), system_prompt=system, temperature=0.2,
                        include_context="none")
        modern = ctx.protocol_version is not None and is_version_at_least(ctx.protocol_version, _INPUT_REQUIRED_ERA)
        if modern or not ctx.session.can_send_request:
            return sample  # the SDK asks through an InputRequiredResult round trip
        # 2025-11-25: ask mid-call ourselves (as the SDK would), so that a client refusing falls back to extractive.
        await ctx.report_progress(0.1, 1.0, "asking the client's model to write the document")
        try:
            return await ctx.session.send_request(CreateMessageRequest(params=sample.params), CreateMessageResult,
                                                  metadata=ServerMessageMetadata(related_request_id=ctx.request_id))
        except MCPError as exc:
            log.info("client declined sampling (%s); writing an extractive summary instead", exc)
            return None

    async def generate_artifact(p: GenerateArtifactInput, ctx: Context, draft: Any = None) -> CallToolResult:
        """Generate a document from artifacts: a summary, report, transcript or digest, as markdown, html, json or
        pdf. Material: thread_id (the thread's artifacts, oldest first), artifact_ids, and/or query (its top_k
        search results). Returns at once the new artifact (status 'processing', document_type, format, thread_id,
        created_at) and its job; the artifact turns 'completed' (or 'failed', with generation_error) when the job
        ends: see get_artifact or list_artifact_jobs, or pass wait=true. When your client supports sampling, your
        model writes summaries, reports and digests from the material; otherwise the server writes an extractive
        one (key sentences, each section citing its artifact ids). Transcripts are verbatim. Pass an
        idempotency_key to make retries safe: the same key with the same request returns the first artifact for
        24 h. The result is an ordinary artifact: searchable once indexed, versioned, downloadable, promotable."""
        result = await generate(backend.store, access(backend, ctx, p, "write"), request_of(p, p.idempotency_key),
                                wait=p.wait, wait_timeout_seconds=p.wait_timeout_seconds, draft=_draft(draft),
                                progress=progress_of(ctx))
        return tool_result(result, _summary_text(result), [result.artifact])

    return [
        make_tool(generate_artifact, name="generate_artifact", title="Generate a document from artifacts",
                  input_model=GenerateArtifactInput, output_model=GenerateResult,
                  annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                                              open_world_hint=False),
                  resolvers={"draft": client_draft}),
    ]
