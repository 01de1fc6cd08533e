"""`artifact-mcp export DEST` and `restore ARCHIVE` (storage/usecases/archive.py does the work)."""

from __future__ import annotations

import argparse

from artifact_mcp.server.commands.output import Output, human_bytes
from artifact_mcp.storage.access import Access
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.usecases.archive import export_archive, restore_archive


async def export_command(store: StoreClient, access: Access, out: Output, args: argparse.Namespace) -> int:
    with out.progress("export") as progress:
        result = await export_archive(store, access, args.archive_dest, progress)
    out.result(result, lambda: out.out.print(
        f"exported {result.versions} versions, {result.blobs} blobs ({human_bytes(result.bytes)}) to {result.dest}"
        + (f"; {result.vanished} deleted meanwhile, left out" if result.vanished else ""), highlight=False))
    return 0


async def restore_command(store: StoreClient, access: Access, out: Output, args: argparse.Namespace) -> int:
    with out.progress("restore") as progress:
        result = await restore_archive(store, access, args.archive_source, progress)
    out.result(result, lambda: out.out.print(
        f"restored {result.restored} of {result.versions} versions ({result.present} already present), "
        f"{result.blobs} blobs ({human_bytes(result.bytes)}); indexing runs in the background", highlight=False))
    return 0
