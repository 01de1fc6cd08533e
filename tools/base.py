"""Turning a pydantic input model + an async function into an MCP tool.

`MCPServer` derives schemas from function signatures; here the pydantic models are the source of
truth instead, so the tool is built from them directly: the input model is the argument model (its
JSON schema is the tool's `inputSchema`) and the output model gives the `outputSchema`. Storage
errors become `ToolError`s, which the client sees as `isError` results with our message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ClassVar

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Resolve, build_resolver_plans
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.types import CallToolResult, ResourceLink, TextContent, ToolAnnotations
from pydantic import BaseModel, ConfigDict, ValidationError

from artifact_mcp.storage.errors import StoreError
from artifact_mcp.storage.models import Artifact, ArtifactSummary
from artifact_mcp.storage.text import printable
from artifact_mcp.tools.schema import compact_schema


class ToolInput(ArgModelBase):
    """Base of every tool's input model: unknown arguments are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    # Fields whose string values must not be re-parsed as JSON (MCPServer does that for clients that
    # send objects as JSON strings, which would turn text content like "[1, 2]" into a list).
    raw_string_fields: ClassVar[frozenset[str]] = frozenset()


class _Metadata(FuncMetadata):
    def pre_parse_json(self, data: dict[str, Any]) -> dict[str, Any]:
        parsed = super().pre_parse_json(data)
        raw = getattr(self.arg_model, "raw_string_fields", frozenset())
        for key in raw:
            if key in data:
                parsed[key] = data[key]
        return parsed

    def convert_result(self, result: Any) -> Any:
        # Our handlers build structured content by dumping the output model itself (`tool_result`), so the
        # SDK's re-validation of that dict against the same model only costs time: ~1.5 ms for a page of 50.
        if isinstance(result, CallToolResult):
            return result
        return super().convert_result(result)


Handler = Callable[..., Awaitable[CallToolResult]]  # (params, ctx, **resolved)


def _received(value: Any) -> str:
    text = printable(repr(value))
    return text if len(text) <= 80 else f"{text[:77]}... ({len(text)} chars)"


def describe_errors(exc: ValidationError) -> str:
    """One line per field: where, the rule, and what was received (pydantic's own text carries type codes and a
    help URL an agent cannot use)."""
    lines = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err["loc"]) or "arguments"
        msg = err["msg"].removeprefix("Value error, ")
        line = f"- {where}: {msg}"
        if err["type"] != "missing":
            line += f" (received {_received(err.get('input'))})"
        lines.append(line)
    count = len(lines)
    return f"{count} invalid argument{'s' if count > 1 else ''}:\n" + "\n".join(lines)


class ArtifactTool(Tool):
    """An SDK tool whose argument errors read as `describe_errors` lines instead of pydantic's dump."""

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        try:
            return await super().run(arguments, context, convert_result)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(f"Error executing tool {self.name}: {describe_errors(exc.__cause__)}") from None
            raise


def make_tool(
    handler: Handler,
    *,
    name: str,
    title: str,
    input_model: type[ToolInput],
    output_model: type[BaseModel],
    annotations: ToolAnnotations,
    resolvers: Mapping[str, Callable[..., Any]] | None = None,
    meta: dict[str, Any] | None = None,
) -> Tool:
    """Build an MCP tool whose description is the handler's docstring.

    `resolvers` name SDK resolvers (`mcp.server.mcpserver.resolve`) run before the handler, which receives their
    results as keyword arguments: the era-portable way to ask the client something (e.g. sampling) mid-call.
    `meta` is the tool definition's `_meta` (e.g. the MCP App viewer link, tools/viewer.py)."""
    resolved = {key: (Resolve(fn), False) for key, fn in (resolvers or {}).items()}

    async def run(ctx: Context, **arguments: Any) -> CallToolResult:
        extra = {key: arguments.pop(key) for key in resolved if key in arguments}
        params = input_model.model_construct(**arguments)
        try:
            return await handler(params, ctx, **extra)
        except StoreError as exc:
            raise ToolError(exc.message) from exc
        except ValidationError as exc:
            # A storage model built from the (already validated) arguments can still reject them, e.g. a bad
            # type inside list_artifacts' comma-separated artifact_types: the caller's to fix, not a crash.
            raise ToolError(describe_errors(exc)) from exc

    schema = input_model.model_json_schema(by_alias=True)
    fn_metadata = _Metadata(arg_model=input_model, output_model=output_model)
    assert fn_metadata.output_schema is not None
    fn_metadata.output_schema = compact_schema(fn_metadata.output_schema)
    return ArtifactTool(
        fn=run,
        name=name,
        title=title,
        description=(handler.__doc__ or "").strip(),
        parameters=schema,
        fn_metadata=fn_metadata,
        is_async=True,
        context_kwarg="ctx",
        annotations=annotations,
        meta=meta,
        resolved_params=resolved,
        resolver_plans=build_resolver_plans(
            resolved, {field.alias or key for key, field in input_model.model_fields.items()}
        ),
    )


def link(artifact: Artifact | ArtifactSummary) -> ResourceLink:
    return ResourceLink(
        type="resource_link",
        uri=artifact.uri,
        name=artifact.name,
        title=f"{artifact.name} (v{artifact.version})",
        description=f"{artifact.artifact_type} · {artifact.mime_type} · {artifact.size_bytes} bytes",
        mime_type="application/json",
    )


def tool_result(structured: BaseModel, text: str,
                artifacts: Iterable[Artifact | ArtifactSummary] = ()) -> CallToolResult:
    """Structured content per the output schema, a short text for the model, and links to artifacts."""
    content: list[Any] = [TextContent(type="text", text=text)]
    content.extend(link(a) for a in artifacts)
    return CallToolResult(content=content, structured_content=structured.model_dump(mode="json"))
