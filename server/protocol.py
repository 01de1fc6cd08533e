"""Protocol requests `MCPServer` leaves unanswered or answers badly: completion of artifact ids,
legacy `logging/setLevel`, and protocol errors for an unknown tool or prompt.

Found with the official conformance suite (tests/test_conformance.py): without these, generic
scenarios (`completion-complete`, `logging-set-level`) fail; `prompts/get` of an unknown name is an
"Internal server error" for 2026-07-28 clients; and an unknown tool is answered with an `isError`
result, although the spec makes it a protocol error (-32602), so a client cannot tell "no such tool"
from "the tool failed".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp import MCPError
from mcp.server import MCPServer, ServerRequestContext
from mcp.types import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    CallToolRequestParams,
    CompleteRequestParams,
    CompleteResult,
    Completion,
    EmptyResult,
    GetPromptRequestParams,
    ResourceTemplateReference,
    SetLevelRequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from artifact_mcp.storage.errors import Forbidden
from artifact_mcp.storage.models import ListQuery

if TYPE_CHECKING:
    from artifact_mcp.server.runtime import Runtime

MAX_COMPLETIONS = 100  # the spec's cap on `completion.values`
COMPLETION_SCAN = 200  # latest artifacts searched for a matching id (one list page)


def install_protocol_handlers(app: MCPServer, runtime: Runtime) -> None:
    low = app._lowlevel_server

    async def complete(ctx: ServerRequestContext[Any, Any], params: CompleteRequestParams) -> CompleteResult:
        """`artifact_id` of the artifact resource templates: ids with that prefix among the caller's latest
        artifacts (one list page). Anything else (we have no prompts) completes to nothing, as the spec allows."""
        ref, arg = params.ref, params.argument
        if not (isinstance(ref, ResourceTemplateReference) and ref.uri.startswith("artifact://")
                and arg.name == "artifact_id"):
            return CompleteResult(completion=Completion(values=[]))
        try:
            scope = runtime.principal_for(ctx.request).resolve(None, None, None, "read")
        except Forbidden:
            return CompleteResult(completion=Completion(values=[]))
        page = await runtime.store.list(scope, ListQuery(limit=COMPLETION_SCAN))
        ids = [a.artifact_id for a in page.artifacts if a.artifact_id.startswith(arg.value)]
        return CompleteResult(completion=Completion(  # total only when every artifact was scanned
            values=ids[:MAX_COMPLETIONS], total=None if page.has_more else len(ids),
            has_more=len(ids) > MAX_COMPLETIONS or page.has_more))

    async def set_level(ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams) -> EmptyResult:
        """Accepted for 2025-11-25 clients. We send no `notifications/message` at all (logs go to stderr as
        JSON lines), so every level is honoured; 2026-07-28 removed the method."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            raise MCPError(code=METHOD_NOT_FOUND, message="Method not found", data="logging/setLevel")
        return EmptyResult()

    get_prompt = low.get_request_handler("prompts/get")
    assert get_prompt is not None  # MCPServer always serves prompts

    async def get_prompt_checked(ctx: ServerRequestContext[Any, Any], params: GetPromptRequestParams) -> Any:
        # MCPServer raises ValueError for an unknown name, which 2026-07-28 clients see as -32603.
        names = [p.name for p in await app.list_prompts()]
        if params.name not in names:
            raise MCPError(code=INVALID_PARAMS, data={"name": params.name},
                           message=f"Unknown prompt: {params.name!r}; prompts/list names the prompts there are "
                                   f"({', '.join(names) or 'none on this server'})")
        return await get_prompt.handler(ctx, params)

    call_tool = low.get_request_handler("tools/call")
    assert call_tool is not None

    async def call_tool_checked(ctx: ServerRequestContext[Any, Any], params: CallToolRequestParams) -> Any:
        if app._tool_manager.get_tool(params.name) is None:  # a dict lookup; list_tools() would build every schema
            names = ", ".join(t.name for t in app._tool_manager.list_tools())
            raise MCPError(code=INVALID_PARAMS, data={"name": params.name},
                           message=f"Unknown tool: {params.name!r}; the tools are: {names}")
        return await call_tool.handler(ctx, params)

    low.add_request_handler("tools/call", call_tool.params_type, call_tool_checked)
    low.add_request_handler("completion/complete", CompleteRequestParams, complete)
    low.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    low.add_request_handler("prompts/get", get_prompt.params_type, get_prompt_checked)
