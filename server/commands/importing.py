"""`artifact-mcp import PATH…`: files and folders into the store (storage/usecases/importing.py does the work)."""

from __future__ import annotations

import argparse

from rich.table import Table

from artifact_mcp.server.commands.output import Output, human_bytes
from artifact_mcp.storage.access import Access
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.usecases.importing import ImportOptions, import_paths


async def command(store: StoreClient, access: Access, out: Output, args: argparse.Namespace) -> int:
    tags = [t.strip() for t in (args.import_tags or "").split(",") if t.strip()] or None
    opts = ImportOptions(thread_id=args.import_thread, artifact_type=args.import_type, tags=tags,
                         recursive=args.import_recursive, globs=args.import_globs)
    with out.progress("import") as progress:
        result = await import_paths(store, access, args.import_paths, opts, progress)

    def render() -> None:
        failed = [i for i in result.items if i.outcome == "failed"]
        if failed:
            table = Table("file", "error", title="failed")
            for item in failed:
                table.add_row(item.path, item.error or "")
            out.out.print(table)
        out.out.print(f"{result.files} files ({human_bytes(result.bytes)}): {result.created} created, "
                      f"{result.updated} updated, {result.unchanged} unchanged, {result.failed} failed",
                      highlight=False)

    out.result(result, render)
    return 1 if result.failed else 0
