"""Change notifications for both protocol eras, delivered only to callers who may see the change.

Every change reaches this process as a `ChangeEvent` from the store (whichever process made it), with
the tenant scope it happened in, and is delivered to:
- 2026-07-28 clients: `subscriptions/listen` streams. Each stream is served by the SDK's
  `ListenHandler` over a per-stream view of one scoped bus, so a listener only ever receives events
  of scopes its principal sees (a URI of another tenant's artifact is honored and never fires, as the
  spec has it for unknown URIs);
- 2025-11-25 clients: their connection's standalone channel (`notifications/resources/updated` for
  URIs they subscribed to, `notifications/resources/list_changed`), under the same rule.

The SDK has no public registry of legacy connections, so the middleware here remembers each one it
sees (weakly, so a closed connection is forgotten) with the principal that opened it.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.subscriptions import ListenHandler, ResourcesListChanged, ResourceUpdated, ServerEvent
from mcp_types import SubscriptionsListenRequestParams, SubscriptionsListenResult
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from artifact_mcp.storage.access import Principal
from artifact_mcp.storage.models import ChangeEvent, Scope

log = logging.getLogger(__name__)

PrincipalOf = Callable[[ServerRequestContext[Any, Any]], Principal]


def artifact_uris(artifact_id: str) -> list[str]:
    base = f"artifact://{artifact_id}"
    return [base, f"{base}/content", f"{base}/versions"]


class ScopedBus:
    """Fan-out of (scope, event) pairs; `view(principal)` is a SubscriptionBus of what it may see."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[Scope, ServerEvent], None]] = []

    async def publish_scoped(self, scope: Scope, event: ServerEvent) -> None:
        for listener in list(self._listeners):
            listener(scope, event)

    def subscribe_scoped(self, listener: Callable[[Scope, ServerEvent], None]) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def view(self, principal: Principal) -> _PrincipalView:
        return _PrincipalView(self, principal)


class _PrincipalView:
    """The SDK's SubscriptionBus protocol, filtered to one principal's scopes."""

    def __init__(self, bus: ScopedBus, principal: Principal) -> None:
        self._bus, self._principal = bus, principal

    async def publish(self, event: ServerEvent) -> None:  # events come from the store, never from a listener
        raise NotImplementedError

    def subscribe(self, listener: Callable[[ServerEvent], None]) -> Callable[[], None]:
        def scoped(scope: Scope, event: ServerEvent) -> None:
            if self._principal.sees(scope):
                listener(event)

        return self._bus.subscribe_scoped(scoped)


class Notifier:
    def __init__(self, principal_of: PrincipalOf) -> None:
        self.bus = ScopedBus()
        self._principal_of = principal_of
        self._legacy: weakref.WeakKeyDictionary[Any, tuple[Principal, set[str]]] = weakref.WeakKeyDictionary()

    @staticmethod
    def _connection(ctx: ServerRequestContext[Any, Any]) -> Any | None:
        if ctx.session.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return None
        return getattr(ctx.session, "_connection", None)

    def _remember(self, ctx: ServerRequestContext[Any, Any]) -> set[str] | None:
        conn = self._connection(ctx)
        if conn is None:
            return None
        entry = self._legacy.get(conn)
        if entry is None:
            entry = (self._principal_of(ctx), set())
            self._legacy[conn] = entry
        return entry[1]

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        try:
            self._remember(ctx)
        except Exception as exc:  # an unauthenticated request: the handler itself refuses it
            log.debug("not registering connection for notifications: %r", exc)
        return await call_next(ctx)

    def subscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        subscribed = self._remember(ctx)
        if subscribed is not None:
            subscribed.add(uri)

    def unsubscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        subscribed = self._remember(ctx)
        if subscribed is not None:
            subscribed.discard(uri)

    async def listen(self, ctx: ServerRequestContext[Any, Any],
                     params: SubscriptionsListenRequestParams) -> SubscriptionsListenResult:
        """`subscriptions/listen`: the SDK's handler over this caller's view of the bus."""
        return await ListenHandler(self.bus.view(self._principal_of(ctx)))(ctx, params)

    async def on_change(self, event: ChangeEvent) -> None:
        uris = [u for aid in event.artifact_ids for u in artifact_uris(aid)]
        if event.kind == "updated" or event.kind == "deleted":
            uris += artifact_uris(event.root_artifact_id)
        list_changed = event.kind != "updated" or len(event.artifact_ids) > 1
        for uri in dict.fromkeys(uris):
            await self.bus.publish_scoped(event.scope, ResourceUpdated(uri=uri))
        if list_changed:
            await self.bus.publish_scoped(event.scope, ResourcesListChanged())
        for conn, (principal, subscribed) in list(self._legacy.items()):
            if not principal.sees(event.scope):
                continue
            try:
                for uri in dict.fromkeys(uris):
                    if uri in subscribed:
                        await conn.send_resource_updated(uri)
                if list_changed:
                    await conn.send_resource_list_changed()
            except Exception as exc:  # a closed connection: forget it
                log.debug("dropping legacy connection after failed notify: %r", exc)
                self._legacy.pop(conn, None)
