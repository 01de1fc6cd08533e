"""The running server's state: settings, the store client and the notifier."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.subscriptions import InMemorySubscriptionBus

from server.notifications import Notifier
from server.settings import Settings
from storage.errors import Unavailable
from storage.models import Scope
from storage.sharing import StoreClient


class Runtime:
    """Implements `tools.artifacts.Backend`. Opened once per process (see `lifespan`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bus = InMemorySubscriptionBus()
        self.notifier = Notifier(self.bus)
        self._client: StoreClient | None = None

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
        client = StoreClient(self.settings.store_config())
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
