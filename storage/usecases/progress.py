"""How a use case reports progress to its door (MCP progress notifications, a CLI bar, nothing on REST)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Progress = Callable[[float, str], Awaitable[None]]


async def report(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        await progress(fraction, message)
