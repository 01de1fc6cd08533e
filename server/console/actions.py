"""The console's forms: sign in and out, and the mutations (promote, delete, pin/unpin, re-run a failed index job,
generate a thread's summary or report). Every POST is checked for its CSRF token first, then the principal's
permission (a read token is refused with 403 and nothing changes), then it calls the use case every door calls.
Each answers with a redirect to the page that shows the result (POST/redirect/GET)."""

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from artifact_mcp.server.console.session import SCOPE_COOKIE, SESSION_COOKIE
from artifact_mcp.server.console.web import Console, SignInRequired, chosen_scope
from artifact_mcp.storage.access import Access
from artifact_mcp.storage.errors import InvalidInput
from artifact_mcp.storage.generate.models import GenerateSpec
from artifact_mcp.storage.models import ARTIFACT_ID_PATTERN, ID_PATTERN, PromoteRequest
from artifact_mcp.storage.usecases import artifacts, generation, recall
from artifact_mcp.storage.usecases.bodies import DeleteOptions, UpdateBody

ArtifactPath = Annotated[str, Path(pattern=ARTIFACT_ID_PATTERN)]
ThreadPath = Annotated[str, Path(pattern=ID_PATTERN, min_length=1, max_length=128)]


def _safe_next(base: str, target: str | None) -> str:
    """Only a path inside the console: a sign-in link cannot send the browser elsewhere."""
    if target and target.startswith(base + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return base + "/"


def actions_router(console: Console) -> APIRouter:
    runtime = console.runtime
    router = APIRouter()
    store = lambda: runtime.store  # noqa: E731 - the store opens after the routes are built

    def back(request: Request, path: str, notice: str | None = None) -> RedirectResponse:
        base = request.scope.get("root_path", "")
        suffix = f"?notice={quote(notice)}" if notice else ""
        return RedirectResponse(f"{base}{path}{suffix}", status_code=303)

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str | None = None) -> Response:
        base = request.scope.get("root_path", "")
        if console.principal(request) is not None:
            return RedirectResponse(_safe_next(base, next), status_code=303)
        return console.render(request, "login.html", next=_safe_next(base, next), error=None)

    @router.post("/login", response_class=HTMLResponse)
    async def login(request: Request, token: Annotated[str, Form(max_length=512)] = "",
                    next: Annotated[str, Form(max_length=2048)] = "") -> Response:
        await console.check_post(request)
        base = request.scope.get("root_path", "")
        if not runtime.auth_enabled:
            return RedirectResponse(_safe_next(base, next), status_code=303)
        opened = console.sessions.open(token)
        if opened is None:
            return console.render(request, "login.html", status=401, next=_safe_next(base, next),
                                  error="That token is not valid (unknown, revoked or expired). Paste the whole "
                                        "token `artifact-mcp token create` printed, amcp_…")
        value, seconds = opened
        response = RedirectResponse(_safe_next(base, next), status_code=303)
        response.set_cookie(SESSION_COOKIE, value, max_age=seconds, httponly=True, samesite="strict",
                            secure=console.secure(request), path=base or "/")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        await console.check_post(request)
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/login", status_code=303)
        for name in (SESSION_COOKIE, SCOPE_COOKIE):
            response.delete_cookie(name, path=base or "/", httponly=True, samesite="strict")
        return response

    @router.post("/scope")
    async def choose_scope(request: Request, scope: Annotated[str, Form(max_length=400)] = "") -> Response:
        """Show another scope the principal may read: kept in a cookie, re-checked on every request."""
        await console.check_post(request)
        principal = console.principal(request)
        if principal is None:
            raise SignInRequired
        chosen = chosen_scope(scope)
        if chosen is None:
            raise InvalidInput(f"scope {scope.strip()!r} is not org/workspace/namespace with three names (no '*')")
        Access.check(principal, chosen, "read")  # Forbidden when outside the token's grants
        base = request.scope.get("root_path", "")
        response = RedirectResponse(f"{base}/", status_code=303)
        response.set_cookie(SCOPE_COOKIE, chosen.label(), httponly=True, samesite="strict",
                            secure=console.secure(request), path=base or "/")
        return response

    @router.post("/artifacts/{artifact_id}/promote")
    async def promote(request: Request, artifact_id: ArtifactPath) -> Response:
        await console.check_post(request)
        access = console.access(request, "admin")
        result = await recall.promote_artifact(store(), access, artifact_id, PromoteRequest())
        return back(request, f"/artifacts/{artifact_id}", result.message)

    @router.post("/artifacts/{artifact_id}/delete")
    async def delete(request: Request, artifact_id: ArtifactPath) -> Response:
        await console.check_post(request)
        access = console.access(request, "write")
        result = await artifacts.delete_artifact(store(), access, artifact_id, DeleteOptions(all_versions=True))
        return back(request, "/artifacts", f"deleted {len(result.deleted_artifact_ids)} version(s) of "
                                           f"{result.root_artifact_id}")

    @router.post("/artifacts/{artifact_id}/pin")
    async def pin(request: Request, artifact_id: ArtifactPath,
                  pinned: Annotated[Literal["true", "false"], Form()]) -> Response:
        await console.check_post(request)
        access = console.access(request, "write")
        await artifacts.update_artifact(store(), access, artifact_id, UpdateBody(is_pinned=pinned == "true"),
                                        max_upload_bytes=runtime.max_upload_bytes)
        return back(request, f"/artifacts/{artifact_id}", "pinned" if pinned == "true" else "unpinned")

    @router.post("/artifacts/{artifact_id}/reindex")
    async def reindex(request: Request, artifact_id: ArtifactPath) -> Response:
        await console.check_post(request)
        access = console.access(request, "write")
        job = await recall.retry_index(store(), access, artifact_id)
        return back(request, f"/artifacts/{artifact_id}", f"index job {job.job_id} queued")

    @router.post("/threads/{thread_id}/generate")
    async def generate(request: Request, thread_id: ThreadPath,
                       document_type: Annotated[str, Form()] = "summary") -> Response:
        await console.check_post(request)
        access = console.access(request, "write")
        if document_type not in ("summary", "report"):
            raise InvalidInput(f"document_type {document_type!r}: choose summary or report")
        spec = GenerateSpec.model_validate({"document_type": document_type, "thread_id": thread_id})
        result = await generation.generate_artifact(store(), access, generation.request_of(spec, None))
        return back(request, f"/artifacts/{result.artifact.artifact_id}", f"{document_type} is being written")

    return router
