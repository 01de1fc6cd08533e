"""Building the MCP application: server object, tools, resources, notifications, HTTP apps."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from mcp.server import MCPServer
from mcp.server.auth.settings import AuthSettings
from pydantic import AnyHttpUrl

from artifact_mcp.server.auth.http import FileTokenVerifier
from artifact_mcp.server.protocol import install_protocol_handlers
from artifact_mcp.server.resources import install_resources
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.server.settings import Settings
from artifact_mcp.server.timings import Timings
from artifact_mcp.tools.artifacts import build_artifact_tools
from artifact_mcp.tools.download_links import build_download_tools
from artifact_mcp.tools.generate import build_generate_tools
from artifact_mcp.tools.query import build_query_tools
from artifact_mcp.tools.viewer import build_viewer_extension

INSTRUCTIONS = """\
Durable memory for artifacts: reports, summaries, transcripts, JSON results, code and files.
Store with create_artifact (text/JSON) or upload_artifact (files); find with list_artifacts
(filters: thread_id, artifact_types, tags, status; cursor pages); read with get_artifact or the
resource artifact://{artifact_id}/content. update_artifact with new content makes a new version;
list_artifact_versions shows them. Recall by meaning with query_artifacts (hybrid search; its
combined_context is ready to cite); promote_artifact makes one a workspace-wide knowledge source;
list_artifact_jobs shows background jobs; get_artifact_download_url gives a link to the
bytes. generate_artifact writes a summary, report, transcript or digest of a thread, artifacts or
search results as markdown/html/json/pdf (a background job; idempotency_key makes retries safe).
Scope (org_id/workspace_id/namespace_id) defaults from settings."""


def _version() -> str:
    try:
        return version("artifact-mcp")
    except PackageNotFoundError:
        return "0.0.0"


def build_app(settings: Settings | None = None) -> tuple[MCPServer, Runtime]:
    settings = settings or Settings()
    runtime = Runtime(settings)
    middleware: list[Any] = [runtime.notifier.middleware]
    lifespan: Any = runtime.lifespan
    if settings.timings_file is not None:  # opt-in benchmark timings
        timings = Timings(settings.timings_file)
        middleware.insert(0, timings.middleware)
        lifespan = timings.wrap_lifespan(lifespan)
    auth: dict[str, Any] = {}
    if runtime.auth_enabled:
        # Tokens come from our own tokens file (`artifact-mcp token create`): this server is their issuer.
        base = runtime.public_url
        auth = {"token_verifier": FileTokenVerifier(runtime.tokens),
                "auth": AuthSettings(issuer_url=AnyHttpUrl(base), resource_server_url=AnyHttpUrl(f"{base}/mcp"),
                                     validate_token_resource=False)}
    app = MCPServer(
        "artifact-mcp",
        title="Artifact memory",
        instructions=INSTRUCTIONS,
        version=_version(),
        tools=[*build_artifact_tools(runtime), *build_query_tools(runtime), *build_download_tools(runtime),
               *build_generate_tools(runtime)],
        extensions=[build_viewer_extension()],  # the MCP App viewer (ui:// resource; see tools/viewer.py)
        lifespan=lifespan,
        middleware=middleware,
        log_level=settings.log_level,
        **auth,
    )
    install_resources(app, runtime)
    install_protocol_handlers(app, runtime)
    return app, runtime
