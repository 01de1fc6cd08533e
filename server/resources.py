"""Artifact resources, installed as low-level handlers on the MCPServer.

`MCPServer` neither pages `resources/list` nor lets a template read choose its own mime type, and it
has no public hook for the legacy `resources/subscribe`. This is the one module that reaches into
`_lowlevel_server` to install: paged `resources/list`, `resources/templates/list`, per-artifact
`resources/read`, and `resources/subscribe` / `resources/unsubscribe` (2025-11-25 clients;
2026-07-28 clients use `subscriptions/listen`, which the SDK serves from our bus).

`ui://` resources (the MCP App viewer, registered on the MCPServer by its Apps extension) are read
through the MCPServer's own resource manager, and listed only to hosts that declared the extension:
the spec lets servers leave UI-only resources out of `resources/list`, and clients without it keep
the listing of their artifacts they always had.
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any

from mcp import MCPError
from mcp.server import MCPServer, NotificationOptions, ServerRequestContext
from mcp.server.apps import client_supports_apps
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.types import (
    INVALID_PARAMS,
    BlobResourceContents,
    EmptyResult,
    ListResourcesResult,
    ListResourceTemplatesResult,
    PaginatedRequestParams,
    ReadResourceRequestParams,
    ReadResourceResult,
    Resource,
    ResourceTemplate,
    SubscribeRequestParams,
    SubscriptionsListenRequestParams,
    TextResourceContents,
    UnsubscribeRequestParams,
)

from artifact_mcp.storage.errors import Forbidden, InvalidInput, NotFound
from artifact_mcp.storage.models import ListQuery

if TYPE_CHECKING:
    from artifact_mcp.server.runtime import Runtime

_URI = re.compile(r"^artifact://(?P<id>art_[0-9a-f]{32})(?P<sub>/content|/versions)?$")

TEMPLATES = [
    ResourceTemplate(uri_template="artifact://{artifact_id}", name="artifact",
                     description="An artifact version's metadata (JSON).", mime_type="application/json"),
    ResourceTemplate(uri_template="artifact://{artifact_id}/content", name="artifact-content",
                     description="An artifact version's content: text, or a binary blob with its own mime type."),
    ResourceTemplate(uri_template="artifact://{artifact_id}/versions", name="artifact-versions",
                     description="All versions of the artifact (JSON, oldest first).",
                     mime_type="application/json"),
]


def _not_found(uri: str, why: str) -> MCPError:
    return MCPError(code=INVALID_PARAMS, message=f"Resource not found: {uri} ({why})", data={"uri": uri})


def install_resources(app: MCPServer, runtime: Runtime) -> None:
    low = app._lowlevel_server

    async def list_resources(ctx: ServerRequestContext[Any, Any],
                             params: PaginatedRequestParams | None) -> ListResourcesResult:
        cursor = params.cursor if params is not None else None
        try:
            # The caller's default scope: the settings' on stdio, the token's over HTTP.
            scope = runtime.principal_for(ctx.request).resolve(None, None, None, "read")
        except (Forbidden, InvalidInput) as exc:
            raise MCPError(code=INVALID_PARAMS, message=f"resources/list lists the caller's default scope: "
                           f"{exc.message}") from None
        try:
            page = await runtime.store.list(scope, ListQuery(limit=runtime.settings.resources_page_size, cursor=cursor))
        except InvalidInput as exc:
            raise MCPError(code=INVALID_PARAMS, message=f"invalid cursor: {exc.message}") from None
        # The viewer leads the first page only, so every page still holds at most the page size of artifacts.
        apps = [r for r in await app.list_resources() if r.uri.startswith("ui://")] \
            if cursor is None and client_supports_apps(ctx) else []
        return ListResourcesResult(
            resources=apps + [
                Resource(uri=a.uri, name=a.name, title=f"{a.name} (v{a.version})",
                         description=a.description or a.content_preview, mime_type="application/json",
                         size=a.size_bytes)
                for a in page.artifacts
            ],
            next_cursor=page.next_cursor,
        )

    async def list_templates(ctx: ServerRequestContext[Any, Any],
                             params: PaginatedRequestParams | None) -> ListResourceTemplatesResult:
        return ListResourceTemplatesResult(resource_templates=TEMPLATES)

    async def read_resource(ctx: ServerRequestContext[Any, Any],
                            params: ReadResourceRequestParams) -> ReadResourceResult:
        uri = str(params.uri)
        if uri.startswith("ui://"):
            return await read_app_resource(uri)
        match = _URI.match(uri)
        if match is None:
            raise _not_found(uri, "expected artifact://{artifact_id}[/content|/versions]")
        artifact_id, sub = match["id"], match["sub"]
        store = runtime.store
        scope = await store.locate(artifact_id)
        # Another tenant's artifact reads exactly like a missing one: its existence is not revealed.
        if scope is None or not runtime.principal_for(ctx.request).sees(scope):
            raise _not_found(uri, "no such artifact")
        runtime.principal_for(ctx.request).check(scope, "read")
        try:
            if sub == "/content":
                # A resource travels inside one JSON-RPC message (base64 for binaries): big files go by link.
                meta = await store.get(scope, artifact_id, include_expired=False, max_chars=0)
                limit = runtime.settings.resource_max_bytes
                if meta.size_bytes > limit:
                    raise MCPError(code=INVALID_PARAMS, data={"uri": uri}, message=(
                        f"{uri} is {meta.size_bytes} bytes, over the {limit}-byte limit for reading as a resource "
                        "(RESOURCE_MAX_BYTES); download it with get_artifact_download_url instead"))
                body = await store.read_content(scope, artifact_id)
                if body.text is not None:
                    contents: Any = TextResourceContents(uri=uri, mime_type=body.mime_type, text=body.text)
                else:
                    contents = BlobResourceContents(uri=uri, mime_type=body.mime_type,
                                                    blob=base64.b64encode(body.data or b"").decode())
            elif sub == "/versions":
                versions = await store.versions(scope, artifact_id)
                payload = "[" + ",".join(v.model_dump_json() for v in versions) + "]"
                contents = TextResourceContents(uri=uri, mime_type="application/json", text=payload)
            else:
                art = await store.get(scope, artifact_id, include_expired=False, max_chars=0)
                contents = TextResourceContents(uri=uri, mime_type="application/json", text=art.model_dump_json())
        except NotFound as exc:
            raise _not_found(uri, exc.message) from None
        return ReadResourceResult(contents=[contents])

    async def read_app_resource(uri: str) -> ReadResourceResult:
        try:
            found = list(await app.read_resource(uri))  # type: ignore[arg-type]  # static resources: no input rounds
        except ResourceNotFoundError:
            raise _not_found(uri, "no such ui:// resource") from None
        return ReadResourceResult(contents=[
            TextResourceContents(uri=uri, mime_type=item.mime_type, text=item.content, _meta=item.meta)
            for item in found if isinstance(item.content, str)
        ])

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        runtime.notifier.subscribe(ctx, str(params.uri))
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        runtime.notifier.unsubscribe(ctx, str(params.uri))
        return EmptyResult()

    low.add_request_handler("resources/list", PaginatedRequestParams, list_resources)
    low.add_request_handler("resources/templates/list", PaginatedRequestParams, list_templates)
    low.add_request_handler("resources/read", ReadResourceRequestParams, read_resource)
    low.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    low.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    low.add_request_handler("subscriptions/listen", SubscriptionsListenRequestParams, runtime.notifier.listen)

    # MCPServer builds the legacy `initialize` capabilities without NotificationOptions, so it would
    # advertise `listChanged: false` although we do send list_changed notifications.
    original = low.create_initialization_options

    def with_list_changed(notification_options: NotificationOptions | None = None, *args: Any, **kwargs: Any):
        options = notification_options or NotificationOptions(resources_changed=True)
        return original(options, *args, **kwargs)

    low.create_initialization_options = with_list_changed  # type: ignore[method-assign]
