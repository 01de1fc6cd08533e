"""How the bulk use cases (import, export, restore) report each item to their door: counts and bytes, so a CLI
can draw a bar with files/s and MB/s (and MCP could send the fraction)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    phase: str  # e.g. "scanning", "importing", "verifying", "restoring", "exporting"
    done: int  # items finished in this phase
    total: int
    bytes_done: int
    bytes_total: int
    item: str = ""  # what was just finished (a path, a version id)
    outcome: str = ""  # what happened to it (created, updated, unchanged, failed, restored, present...)


StepReport = Callable[[Step], Awaitable[None]]


async def tell(report: StepReport | None, step: Step) -> None:
    if report is not None:
        await report(step)
