"""The console's reading pages: overview, artifacts (filters, cursor paging), search, an artifact (content by type,
jobs, versions), a diff between two versions, threads, sources; and the artifact's bytes (inline or download).

Each page authorizes an Access (the signed-in principal in its chosen or home scope) and calls the use cases every
other door calls; nothing here reads the store another way.
"""

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from artifact_mcp.server.console import render
from artifact_mcp.server.console.web import Console
from artifact_mcp.server.routes.link_downloads import serve_target
from artifact_mcp.storage.errors import InvalidInput
from artifact_mcp.storage.jobs import INDEX_JOB_TYPES
from artifact_mcp.storage.models import ARTIFACT_ID_PATTERN, ID_PATTERN, ListOrder, QueryRequest
from artifact_mcp.storage.usecases import artifacts, recall, stats
from artifact_mcp.storage.usecases.bodies import ListBody, ReadOptions
from artifact_mcp.storage.usecases.links import file_target

ArtifactId = Annotated[str, Query(pattern=ARTIFACT_ID_PATTERN)]
ArtifactPath = Annotated[str, Path(pattern=ARTIFACT_ID_PATTERN)]
ThreadPath = Annotated[str, Path(pattern=ID_PATTERN, min_length=1, max_length=128)]
DETAIL_CHARS = 400_000
DIFF_CHARS = 1_000_000
PAGE_SIZE = 50


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _invalid(exc: ValidationError) -> InvalidInput:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors()]
    return InvalidInput("; ".join(parts))


def pages_router(console: Console) -> APIRouter:
    runtime = console.runtime
    router = APIRouter()
    store = lambda: runtime.store  # noqa: E731 - the store opens after the routes are built

    @router.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> HTMLResponse:
        access = console.access(request)
        figures = await stats.store_stats(store(), access)
        return console.render(request, "overview.html", access=access, stats=figures, nav="overview")

    @router.get("/artifacts", response_class=HTMLResponse)
    async def artifact_list(request: Request, thread_id: str | None = None, artifact_type: str | None = None,
                            status: str | None = None, tags: str | None = None, created_by: str | None = None,
                            sort: ListOrder = "newest", cursor: str | None = None) -> HTMLResponse:
        access = console.access(request)
        filters = {"thread_id": _blank(thread_id), "artifact_types": _blank(artifact_type), "status": _blank(status),
                   "tags": [t.strip() for t in (tags or "").split(",") if t.strip()] or None,
                   "created_by": _blank(created_by)}
        try:
            body = ListBody.model_validate({**filters, "limit": PAGE_SIZE, "cursor": _blank(cursor)})
        except ValidationError as exc:
            raise _invalid(exc) from None
        page = await artifacts.list_artifacts(store(), access, body, order=sort)
        form = {"thread_id": thread_id or "", "artifact_type": artifact_type or "", "status": status or "",
                "tags": tags or "", "created_by": created_by or "", "sort": "" if sort == "newest" else sort}
        query = "&".join(f"{k}={quote(v)}" for k, v in form.items() if v)
        return console.render(request, "artifacts.html", access=access, page=page, form=form, query=query,
                              first=cursor is None, nav="artifacts")

    @router.get("/search", response_class=HTMLResponse)
    async def search(request: Request, q: str | None = None, mode: str = "hybrid", thread_id: str | None = None,
                     artifact_type: str | None = None) -> HTMLResponse:
        access = console.access(request)
        result = None
        if _blank(q):
            try:
                req = QueryRequest.model_validate({
                    "query": q, "mode": mode, "thread_id": _blank(thread_id), "top_k": 20,
                    "artifact_types": [artifact_type.strip()] if _blank(artifact_type) else None})
            except ValidationError as exc:
                raise _invalid(exc) from None
            result = await recall.query_artifacts(store(), access, req)
        hits = [(hit, render.highlight_terms(hit.matched_chunk, q or "")) for hit in result.results] if result else []
        form = {"q": q or "", "mode": mode, "thread_id": thread_id or "", "artifact_type": artifact_type or ""}
        return console.render(request, "search.html", access=access, result=result, hits=hits, form=form,
                              nav="search")

    @router.get("/artifacts/{artifact_id}", response_class=HTMLResponse)
    async def artifact_detail(request: Request, artifact_id: ArtifactPath) -> HTMLResponse:
        access = console.access(request)
        art = await artifacts.get_artifact(store(), access, artifact_id,
                                           ReadOptions(include_expired=True, max_chars=DETAIL_CHARS))
        jobs = await recall.list_jobs(store(), access, artifact_id)
        versions = await artifacts.list_versions(store(), access, artifact_id)
        shown = render.render(art)
        # The re-run button: this version's last index job gave up (what retry_index accepts).
        last_index = next((j for j in jobs.jobs if j.artifact_id == art.artifact_id and j.type in INDEX_JOB_TYPES),
                          None)
        return console.render(request, "artifact.html", access=access, art=art, shown=shown, jobs=jobs.jobs,
                              versions=versions.versions, nav="artifacts",
                              index_failed=last_index is not None and last_index.status == "failed")

    @router.get("/artifacts/{artifact_id}/diff", response_class=HTMLResponse)
    async def diff(request: Request, artifact_id: ArtifactPath, a: ArtifactId | None = None,
                   b: ArtifactId | None = None) -> HTMLResponse:
        access = console.access(request)
        versions = (await artifacts.list_versions(store(), access, artifact_id)).versions
        ids = {v.artifact_id for v in versions}
        old_id = a or (versions[-2].artifact_id if len(versions) > 1 else versions[-1].artifact_id)
        new_id = b or versions[-1].artifact_id
        for chosen in (old_id, new_id):
            if chosen not in ids:
                raise InvalidInput(f"{chosen} is not a version of this artifact; pick versions from the list")
        opts = ReadOptions(include_expired=True, max_chars=DIFF_CHARS)
        old = await artifacts.get_artifact(store(), access, old_id, opts)
        new = await artifacts.get_artifact(store(), access, new_id, opts)
        old_text, new_text = render.diff_text(old), render.diff_text(new)
        lines = None
        if old_text is not None and new_text is not None:
            lines = render.diff(old_text, new_text, f"v{old.version}", f"v{new.version}")
        return console.render(request, "diff.html", access=access, versions=versions, old=old, new=new,
                              lines=lines, nav="artifacts")

    @router.get("/threads", response_class=HTMLResponse)
    async def threads(request: Request) -> HTMLResponse:
        access = console.access(request)
        found = await artifacts.list_threads(store(), access)
        return console.render(request, "threads.html", access=access, threads=found, nav="threads")

    @router.get("/threads/{thread_id}", response_class=HTMLResponse)
    async def thread(request: Request, thread_id: ThreadPath, sort: ListOrder = "oldest",
                     cursor: str | None = None) -> HTMLResponse:
        access = console.access(request)
        body = ListBody(limit=PAGE_SIZE, cursor=_blank(cursor))
        # A timeline reads in order: oldest first unless asked otherwise.
        page = await artifacts.list_artifacts(store(), access, body, thread_id=thread_id, order=sort)
        return console.render(request, "thread.html", access=access, thread_id=thread_id, page=page, sort=sort,
                              query="" if sort == "oldest" else f"sort={sort}", first=cursor is None,
                              nav="threads")

    @router.get("/sources", response_class=HTMLResponse)
    async def sources(request: Request, cursor: str | None = None) -> HTMLResponse:
        access = console.access(request)
        page = await artifacts.list_sources(store(), access, ListBody(limit=PAGE_SIZE, cursor=_blank(cursor)))
        return console.render(request, "sources.html", access=access, page=page, first=cursor is None,
                              nav="sources")

    async def _bytes(request: Request, artifact_id: ArtifactPath, inline: bool) -> Response:
        access = console.access(request)
        target = await file_target(store(), access, artifact_id)
        response = await serve_target(runtime, target, request)
        if inline:
            mime = render.base_mime(target.content_type)
            response.headers["Content-Disposition"] = response.headers["Content-Disposition"].replace(
                "attachment", "inline", 1)
            # Framed by the artifact page only. A PDF goes to the browser's own viewer, which a sandboxed document
            # may not load; it runs no script of ours either way. Everything else stays sandboxed (an SVG opened
            # directly could otherwise run its script on this origin).
            csp = "default-src 'none'; frame-ancestors 'self'"
            response.headers["Content-Security-Policy"] = csp if mime == "application/pdf" else f"sandbox; {csp}"
            response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response

    @router.get("/artifacts/{artifact_id}/raw")
    async def raw(request: Request, artifact_id: ArtifactPath) -> Response:
        return await _bytes(request, artifact_id, inline=True)

    @router.get("/artifacts/{artifact_id}/download")
    async def download(request: Request, artifact_id: ArtifactPath) -> Response:
        return await _bytes(request, artifact_id, inline=False)

    return router
