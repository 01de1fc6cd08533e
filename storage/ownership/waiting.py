"""What `StoreClient` offers beyond forwarding one call: waiting, with progress, until an artifact is indexed or
generated, or until the store is open and its model loaded. Written once on the client, so every door (MCP
tools, REST routes) waits the same way."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from artifact_mcp.storage.models import Artifact, Scope

Progress = Callable[[str, float], Awaitable[None]]


class Waiting:
    """A mixin of `StoreClient`: it polls through the client's own (forwarded) operations."""

    if TYPE_CHECKING:
        _ready: anyio.Event
        _warm_seen: bool

        async def opened(self) -> None: ...
        def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]: ...

    async def wait_generated(self, scope: Scope, artifact_id: str, timeout: float,
                             on_progress: Progress | None = None) -> Artifact:
        """Poll until the generated document is `completed` or `failed` (or `timeout`); report each new state."""
        def state_of(art: Artifact) -> tuple[str, float, bool]:
            done = art.status in ("completed", "failed")
            return art.status, 1.0 if done else 0.5, done

        return await self._poll(scope, artifact_id, timeout, state_of, on_progress)

    async def wait_indexed(self, scope: Scope, artifact_id: str, timeout: float,
                           on_progress: Progress | None = None) -> Artifact:
        """Poll until the version is searchable (or indexing gave up, or `timeout`); report each new state."""
        def state_of(art: Artifact) -> tuple[str, float, bool]:
            state = "indexed" if art.is_indexed else art.status
            return state, {"pending": 0.1, "processing": 0.5}.get(state, 1.0), art.is_indexed or art.status == "failed"

        return await self._poll(scope, artifact_id, timeout, state_of, on_progress)

    async def wait_warm(self, timeout: float, on_progress: Progress | None = None,
                        *, model: bool = True) -> None:
        """Wait (at most `timeout`) until a query is answered without waiting for start-up: the store is open and
        (`model`) its owner has loaded the embedding model. While waiting, report what is awaited, once a second.
        Raises `Unavailable` when the store could not be opened."""
        if self._warm_seen or (not model and self._ready.is_set()):
            await self.opened()
            return
        start = anyio.current_time()
        reported: float | None = None
        with anyio.move_on_after(timeout):
            while True:
                if self._ready.is_set():
                    await self.opened()
                    if not model:
                        return
                    if await self.is_warm():
                        self._warm_seen = True
                        return
                    what = "the embedding model to load"
                else:
                    what = "the store to open"
                now = anyio.current_time()
                if on_progress is not None and (reported is None or now - reported >= 1.0):
                    waited = now - start
                    await on_progress(f"waiting for {what} ({waited:.0f} s)", waited / (waited + 10))
                    reported = now
                await anyio.sleep(0.05)

    async def _poll(self, scope: Scope, artifact_id: str, timeout: float,
                    state_of: Callable[[Artifact], tuple[str, float, bool]],
                    on_progress: Progress | None) -> Artifact:
        """Read the artifact until `state_of` says done (or `timeout`), reporting each new (state, fraction)."""
        last = None
        with anyio.move_on_after(timeout):
            while True:
                art = await self.get(scope, artifact_id, include_expired=True, max_chars=0)
                state, fraction, done = state_of(art)
                if state != last and on_progress is not None:
                    await on_progress(state, fraction)
                last = state
                if done:
                    return art
                await anyio.sleep(0.05)
        return await self.get(scope, artifact_id, include_expired=True, max_chars=0)
