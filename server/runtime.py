"""The running server's state: settings, the store client and the notifier."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import Context
from starlette.requests import HTTPConnection

from artifact_mcp.server.auth.http import principal_of
from artifact_mcp.server.auth.tokens import TokenFile
from artifact_mcp.server.notifications import Notifier
from artifact_mcp.server.settings import Settings
from artifact_mcp.storage.access import Principal, local_principal
from artifact_mcp.storage.errors import Forbidden, Unavailable
from artifact_mcp.storage.models import Scope
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.usecases.links import LinkPolicy


class Runtime:
    """Implements `tools.backend.Backend`. Opened once per process (see `lifespan`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.notifier = Notifier(lambda ctx: self.principal_for(ctx.request))
        self._client: StoreClient | None = None
        self.tokens = TokenFile.for_catalog(settings.store_config().catalog_path, settings.tokens_path)
        self.local = local_principal(settings.default_scope)
        self.draining = False  # set on shutdown: /readyz turns 503 while in-flight requests finish

    @property
    def public_url(self) -> str:
        s = self.settings
        return (s.public_url or f"http://{s.host}:{s.port}").rstrip("/")

    @property
    def auth_enabled(self) -> bool:
        """Tokens are checked on HTTP/SSE unless turned off; stdio is local and trusted."""
        return self.settings.transport != "stdio" and self.settings.auth == "tokens"

    def principal_for(self, request: Any) -> Principal:
        """Who sent this request: the token's principal over authenticated HTTP, else the local user."""
        conn = request if isinstance(request, HTTPConnection) else None
        if conn is None or not self.auth_enabled:
            return self.local
        principal = principal_of(conn)
        if principal is None:  # the HTTP auth middleware lets no such request through; never fall back to trust
            raise Forbidden("forbidden: this request carries no valid token")
        return principal

    def principal(self, ctx: Context) -> Principal:
        return self.principal_for(ctx.request_context.request)

    @property
    def link_policy(self) -> LinkPolicy:
        s = self.settings
        return LinkPolicy(transport="stdio" if s.transport == "stdio" else "http", public_url=self.public_url,
                          native=s.native_download_links)

    @property
    def store(self) -> StoreClient:
        if self._client is None:
            raise Unavailable("the store is not open (server starting or stopping); retry in a moment")
        return self._client

    @property
    def default_scope(self) -> Scope:
        return self.settings.default_scope

    @property
    def allowed_roots(self) -> list[str]:
        return self.settings.allowed_roots

    @property
    def max_upload_bytes(self) -> int:
        return self.settings.max_upload_bytes

    @property
    def is_open(self) -> bool:
        return self._client is not None

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Runtime]:
        # In the background: the server answers `initialize` (and lists its tools) while the store opens and the
        # model loads; calls wait for them.
        client = StoreClient(self.settings.store_config(), open_in_background=True)
        client.add_listener(self.notifier.on_change)
        async with client:
            self._client = client
            try:
                yield self
            finally:
                self._client = None

    @asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[Runtime]:
        """MCP lifespan. Transports that enter it per connection (SSE) find the store already opened
        by the HTTP app's own lifespan and share it."""
        if self.is_open:
            yield self
            return
        async with self.open():
            yield self
