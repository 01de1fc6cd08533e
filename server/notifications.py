"""Change notifications for both protocol eras.

Every change reaches this process as a `ChangeEvent` from the store (whichever process made it), and
is published to:
- 2026-07-28 clients: the SDK's subscription bus, served by `subscriptions/listen`;
- 2025-11-25 clients: their connection's standalone channel (`notifications/resources/updated` for
  URIs they subscribed to, `notifications/resources/list_changed` for everyone).

The SDK has no public registry of legacy connections, so the middleware here remembers each one it
sees (weakly, so a closed connection is forgotten).
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.subscriptions import ResourcesListChanged, ResourceUpdated, SubscriptionBus
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from storage.models import ChangeEvent

log = logging.getLogger(__name__)


def artifact_uris(artifact_id: str) -> list[str]:
    base = f"artifact://{artifact_id}"
    return [base, f"{base}/content", f"{base}/versions"]


class Notifier:
    def __init__(self, bus: SubscriptionBus) -> None:
        self.bus = bus
        self._legacy: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()

    @staticmethod
    def _connection(ctx: ServerRequestContext[Any, Any]) -> Any | None:
        if ctx.session.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return None
        return getattr(ctx.session, "_connection", None)

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        conn = self._connection(ctx)
        if conn is not None and conn not in self._legacy:
            self._legacy[conn] = set()
        return await call_next(ctx)

    def subscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        conn = self._connection(ctx)
        if conn is not None:
            self._legacy.setdefault(conn, set()).add(uri)

    def unsubscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        conn = self._connection(ctx)
        if conn is not None:
            self._legacy.get(conn, set()).discard(uri)

    async def on_change(self, event: ChangeEvent) -> None:
        uris = [u for aid in event.artifact_ids for u in artifact_uris(aid)]
        if event.kind == "updated" or event.kind == "deleted":
            uris += artifact_uris(event.root_artifact_id)
        list_changed = event.kind != "updated" or len(event.artifact_ids) > 1
        for uri in dict.fromkeys(uris):
            await self.bus.publish(ResourceUpdated(uri=uri))
        if list_changed:
            await self.bus.publish(ResourcesListChanged())
        for conn, subscribed in list(self._legacy.items()):
            try:
                for uri in dict.fromkeys(uris):
                    if uri in subscribed:
                        await conn.send_resource_updated(uri)
                if list_changed:
                    await conn.send_resource_list_changed()
            except Exception as exc:  # a closed connection: forget it
                log.debug("dropping legacy connection after failed notify: %r", exc)
                self._legacy.pop(conn, None)
