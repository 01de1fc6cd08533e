"""What every people's command shares: opening the store as any other process does, the caller's access, and
the output (rich tables on stdout for people, JSON only with --json, progress and errors on stderr)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from artifact_mcp.server.settings import Settings
from artifact_mcp.storage.access import Access, local_principal
from artifact_mcp.storage.errors import StoreError
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.usecases.steps import Step, StepReport

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

Command = Callable[[StoreClient, Access, "Output"], Awaitable[int]]


class Output:
    """stdout for results, stderr for everything else."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.json = bool(getattr(args, "json_output", False))
        self.out = Console(soft_wrap=True)
        self.err = Console(stderr=True)

    def result(self, model: BaseModel | list[Any] | dict[str, Any], render: Callable[[], None]) -> None:
        """The JSON of `model` with --json, else what `render` prints for people."""
        if self.json:
            text = model.model_dump_json(indent=2) if isinstance(model, BaseModel) else _dump(model)
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        else:
            render()

    def note(self, message: str) -> None:
        self.err.print(message, highlight=False, markup=False, soft_wrap=True)

    @contextmanager
    def progress(self, label: str) -> Iterator[StepReport]:
        """A bar on a terminal (items, bytes, their rates); on anything else (a log, a pipe) one line per item on
        stderr."""
        if not self.err.is_terminal:
            async def lines(step: Step) -> None:
                self.err.print(f"{step.phase} {step.done}/{step.total} {step.outcome} {step.item}", highlight=False,
                               markup=False, soft_wrap=True)
            yield lines
            return
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[counts]}"),
                   TextColumn("{task.fields[rates]}"), TimeElapsedColumn(), TimeRemainingColumn())
        started = time.monotonic()
        with Progress(*columns, console=self.err) as bar:
            task: TaskID = bar.add_task(label, total=None, counts="", rates="")

            async def update(step: Step) -> None:
                elapsed = max(time.monotonic() - started, 1e-6)
                counts = f"{step.done}/{step.total}"
                if step.bytes_total:
                    counts += f"  {human_bytes(step.bytes_done)}/{human_bytes(step.bytes_total)}"
                elif step.bytes_done:
                    counts += f"  {human_bytes(step.bytes_done)}"
                rates = f"{step.done / elapsed:.0f}/s  {step.bytes_done / elapsed / 1e6:.1f} MB/s"
                # The bar follows bytes when their total is known (a few large files dominate a folder's time).
                total, done = (step.bytes_total, step.bytes_done) if step.bytes_total else (step.total, step.done)
                bar.update(task, description=f"{label}: {step.phase}", total=total or None, completed=done,
                           counts=counts, rates=rates)
            yield update


def _dump(value: Any) -> str:
    import json

    return json.dumps(value, indent=2, default=str)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def run(settings: Settings, args: argparse.Namespace, command: Command) -> None:
    """Join the store (owning it if no server does, else forwarding to the one that does), run `command` as the
    local, trusted user in the scope the settings name, and exit with its code."""
    output = Output(args)
    name = f"artifact-mcp {args.command}"

    async def main() -> int:
        # Owning the store (no server does) for a moment, it runs no indexing: jobs wait for the next server.
        cfg = settings.store_config().model_copy(update={"background_work": False})
        async with StoreClient(cfg) as client:
            await client.opened()
            access = Access(scope=settings.default_scope, principal=local_principal(settings.default_scope))
            return await command(client, access, output)

    try:
        code = anyio.run(main)
    except StoreError as exc:
        output.note(f"{name}: {exc.message}")
        raise SystemExit(EXIT_ERROR) from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']} (got {e.get('input')!r})"
                             for e in exc.errors())
        output.note(f"{name}: invalid option: {problems}")
        raise SystemExit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        output.note(f"{name}: interrupted; what finished is kept (an import or restore resumes when run again)")
        raise SystemExit(EXIT_INTERRUPTED) from None
    raise SystemExit(code)
