"""The people's commands: import, export, restore, ls, show, search, stats. Each parses its arguments
(parsers.py), shows progress and prints; the work is a use case in storage/usecases, as for every other door."""

from __future__ import annotations

import argparse

from artifact_mcp.server.commands.parsers import NAMES, add_parsers
from artifact_mcp.server.settings import Settings

__all__ = ["NAMES", "add_parsers", "dispatch"]


def dispatch(settings: Settings, args: argparse.Namespace) -> None:
    """Run a people's command (its modules, rich and the use cases are imported only now)."""
    from artifact_mcp.server.commands import archive, importing, lookup
    from artifact_mcp.server.commands.output import run

    command = {
        "import": importing.command, "export": archive.export_command, "restore": archive.restore_command,
        "ls": lookup.ls_command, "show": lookup.show_command, "search": lookup.search_command,
        "stats": lookup.stats_command,
    }[args.command]
    run(settings, args, lambda store, access, out: command(store, access, out, args))
