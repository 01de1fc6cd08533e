"""`artifact-mcp ls | show ID | search "…" | stats`: reads through the same use cases as the MCP tools."""

from __future__ import annotations

import argparse

from pydantic import BaseModel
from rich.table import Column, Table

from artifact_mcp.server.commands.output import Output, human_bytes
from artifact_mcp.storage.access import Access
from artifact_mcp.storage.models import Artifact, QueryRequest
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.usecases.artifacts import get_artifact, list_artifacts, list_versions
from artifact_mcp.storage.usecases.bodies import ListBody, ReadOptions, VersionList
from artifact_mcp.storage.usecases.recall import query_artifacts
from artifact_mcp.storage.usecases.stats import store_stats


def _types(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] or None if text else None


async def ls_command(store: StoreClient, access: Access, out: Output, args: argparse.Namespace) -> int:
    body = ListBody(thread_id=args.ls_thread, artifact_types=args.ls_types, tags=args.ls_tags, status=args.ls_status,
                    latest_only=not args.ls_all_versions, limit=args.ls_limit, cursor=args.ls_cursor)
    page = await list_artifacts(store, access, body)

    def render() -> None:
        table = Table("name", "type", "v", "status", "size", "thread", "created (UTC)")
        table.columns.insert(0, Column("id", no_wrap=True, min_width=36))
        for a in page.artifacts:
            table.add_row(a.artifact_id, a.name, a.artifact_type, str(a.version), a.status, human_bytes(a.size_bytes),
                          a.thread_id or "", a.created_at.strftime("%Y-%m-%d %H:%M:%S"))
        out.out.print(table)
        more = f"; more with --cursor {page.next_cursor}" if page.has_more else ""
        out.out.print(f"{len(page.artifacts)} of {page.total}{more}", highlight=False)

    out.result(page, render)
    return 0


class Shown(BaseModel):
    artifact: Artifact
    versions: VersionList


async def show_command(store: StoreClient, access: Access, out: Output, args: argparse.Namespace) -> int:
    art = await get_artifact(store, access, args.show_id, ReadOptions(max_chars=max(args.show_max_chars, 0),
                                                                      include_expired=True))
    versions = await list_versions(store, access, args.show_id)

    def render() -> None:
        table = Table("field", "value", show_header=False)
        for field in ("artifact_id", "name", "artifact_type", "version", "status", "mime_type", "size_bytes",
                      "sha256", "thread_id", "tags", "description", "summary", "is_indexed", "chunk_count",
                      "expires_at", "created_by", "created_at", "updated_at", "metadata"):
            value = getattr(art, field)
            if value not in (None, [], {}):
                table.add_row(field, str(value))
        out.out.print(table)
        vt = Table("version", "latest", "size", "created (UTC)", title="versions")
        vt.columns.insert(1, Column("id", no_wrap=True, min_width=36))
        for v in versions.versions:
            vt.add_row(str(v.version), v.artifact_id, "yes" if v.is_latest else "", human_bytes(v.size_bytes),
                       v.created_at.strftime("%Y-%m-%d %H:%M:%S"))
        out.out.print(vt)
        if art.content_text:
            out.out.rule("content" + (" (cut; --max-chars for more)" if art.content_truncated else ""))
            out.out.print(art.content_text, markup=False, highlight=False)

    out.result(Shown(artifact=art, versions=versions), render)
    return 0


async def search_command(store: StoreClient, access: Access, out: Output, args: argparse.Namespace) -> int:
    req = QueryRequest(query=args.search_query, top_k=args.search_top_k, mode=args.search_mode,
                       thread_id=args.search_thread, artifact_types=_types(args.search_types))
    result = await query_artifacts(store, access, req)

    def render() -> None:
        table = Table("#", "score", "name", "passage")
        table.columns.insert(3, Column("id", no_wrap=True, min_width=36))
        for n, hit in enumerate(result.results, 1):
            passage = " ".join(hit.matched_chunk.split())
            table.add_row(str(n), f"{hit.score:.3f}", hit.artifact.name, hit.artifact.artifact_id,
                          passage[:160] + ("…" if len(passage) > 160 else ""))
        out.out.print(table)
        out.out.print(f"{len(result.results)} shown of {result.total_results} with evidence", highlight=False)

    out.result(result, render)
    return 0


async def stats_command(store: StoreClient, access: Access, out: Output, args: argparse.Namespace) -> int:
    stats = await store_stats(store, access)

    def render() -> None:
        table = Table("figure", "value", title=f"store {access.scope.label()}", show_header=False)
        table.add_row("artifacts", str(stats.artifacts))
        for kind, n in sorted(stats.by_type.items()):
            table.add_row(f"  type {kind}", str(n))
        for status, n in sorted(stats.by_status.items()):
            table.add_row(f"  status {status}", str(n))
        table.add_row("versions", str(stats.versions))
        table.add_row("content", human_bytes(stats.content_bytes))
        table.add_row("blobs", f"{stats.blobs} ({human_bytes(stats.blob_bytes)})")
        table.add_row("jobs waiting / running / failed", f"{stats.jobs_pending} / {stats.jobs_running} / "
                                                         f"{stats.jobs_failed}")
        if stats.oldest_pending_seconds is not None:
            table.add_row("oldest waiting job", f"{stats.oldest_pending_seconds:.0f} s")
        out.out.print(table)

    out.result(stats, render)
    return 0
