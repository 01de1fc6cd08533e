"""The Aimable Artifacts API under `/v1/spaces/{space_id}`: the same store and use cases as every other door.

A space is a namespace of the token's own org and workspace: `space_id` S, for a token whose default scope is
`acme/research/main` (or whose one concrete grant is), is `acme/research/S`. So a token granted `acme/research/*`
reaches every space of that workspace, one granted `acme/research/main` only the space `main`, and another org's
space can never be named. `--auth none` and stdio use the server's default org and workspace.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Security
from fastapi.responses import Response

from artifact_mcp.server.routes.link_downloads import serve_target
from artifact_mcp.server.routes.rest_common import ERRORS, NOT_FOUND, ErrorBody, api_key, bearer, route_class
from artifact_mcp.server.routes.rest_models import (
    AimableArtifact,
    AimableArtifactItem,
    AimableGenerateBody,
    AimableGenerated,
    AimableJob,
    AimableList,
    AimableListParams,
)
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.storage.access import Access, Permission, Principal
from artifact_mcp.storage.errors import Forbidden
from artifact_mcp.storage.generate.models import IDEMPOTENCY_KEY_PATTERN
from artifact_mcp.storage.models import ARTIFACT_ID_PATTERN, ID_PATTERN, Scope
from artifact_mcp.storage.usecases import artifacts, generation, links, recall
from artifact_mcp.storage.usecases.bodies import ReadOptions

PREFIX = "/v1/spaces/{space_id}"

SpacePath = Annotated[str, Path(pattern=ID_PATTERN, min_length=1, max_length=128,
                                description="A namespace of the token's org and workspace.")]
ArtifactIdPath = Annotated[str, Path(pattern=ARTIFACT_ID_PATTERN, description="An artifact id, e.g. 'art_3f2a…'.")]


def space_scope(principal: Principal, space_id: str) -> Scope:
    """The scope a space names for this principal (see the module docstring)."""
    home = principal.home()
    if home is None:
        raise Forbidden(f"forbidden: principal {principal.principal_id!r} has no default org/workspace, so space "
                        f"{space_id!r} names nothing; create its token with --default-scope org/workspace/namespace")
    return Scope(org_id=home.org_id, workspace_id=home.workspace_id, namespace_id=space_id)


def aimable_router(runtime: Runtime) -> APIRouter:
    def access(need: Permission) -> Callable[..., Awaitable[Access]]:
        async def check(request: Request, space_id: SpacePath, _bearer: Annotated[Any, Security(bearer)],
                        _key: Annotated[Any, Security(api_key)]) -> Access:
            principal = runtime.principal_for(request)
            return Access.check(principal, space_scope(principal, space_id), need)

        return check

    Read = Annotated[Access, Depends(access("read"))]
    Write = Annotated[Access, Depends(access("write"))]
    store = lambda: runtime.store  # noqa: E731 - read at call time: the store opens after the routes are built

    router = APIRouter(prefix=PREFIX, tags=["Aimable artifacts"], route_class=route_class(runtime), responses=ERRORS)

    @router.get("/artifacts", operation_id="aimable_list_artifacts", summary="List a space's artifacts",
                response_model=AimableList)
    async def list_artifacts(a: Read, p: Annotated[AimableListParams, Query()]) -> AimableList:
        """Newest first; pass the answer's `cursor` back for the next page (null on the last)."""
        page = await artifacts.list_artifacts(store(), a, p.to_body())
        return AimableList(data=[AimableArtifactItem.of(x) for x in page.artifacts], cursor=page.next_cursor)

    @router.get("/artifacts/{artifact_id}", operation_id="aimable_get_artifact", summary="Get an artifact",
                response_model=AimableArtifact, responses=NOT_FOUND)
    async def get_artifact(a: Read, artifact_id: ArtifactIdPath) -> AimableArtifact:
        """Its state; poll it after POST …/generate until `status` is `completed` (or `failed`)."""
        return AimableArtifact.of(await artifacts.get_artifact(store(), a, artifact_id, ReadOptions(max_chars=0)))

    @router.head("/artifacts/{artifact_id}/download", include_in_schema=False)
    @router.get("/artifacts/{artifact_id}/download", operation_id="aimable_download_artifact",
                summary="Download an artifact", response_class=Response, responses={
                    **NOT_FOUND, 200: {"description": "The file itself, named by Content-Disposition (Range "
                                                      "honoured: 206, 416)."}})
    async def download(a: Read, artifact_id: ArtifactIdPath, request: Request) -> Response:
        """The bytes themselves (a generated PDF, an uploaded file, the text of created content), streamed."""
        return await serve_target(runtime, await links.file_target(store(), a, artifact_id), request)

    @router.get("/artifacts/{artifact_id}/jobs", operation_id="aimable_list_jobs", summary="An artifact's jobs",
                response_model=list[AimableJob], responses=NOT_FOUND)
    async def list_jobs(a: Read, artifact_id: ArtifactIdPath) -> list[AimableJob]:
        """A bare list, newest first: `job_id`, `type` (e.g. `generate_summary`, `index`), `status`, `started_at`,
        `ended_at`."""
        jobs = await recall.list_jobs(store(), a, artifact_id)
        return [AimableJob(job_id=j.job_id, type=j.type, status=j.status, started_at=j.started_at,
                           ended_at=j.ended_at) for j in jobs.jobs]

    @router.post("/artifacts/generate", operation_id="aimable_generate_artifact", status_code=201,
                 summary="Generate a document from a thread", response_model=AimableGenerated,
                 responses={**NOT_FOUND, 409: {"model": ErrorBody, "description": "Idempotency-Key reused for a "
                                                                                  "different request."}})
    async def generate_artifact(
        a: Write, body: AimableGenerateBody,
        idempotency_key: Annotated[str | None, Header(
            alias="Idempotency-Key", min_length=1, max_length=255, pattern=IDEMPOTENCY_KEY_PATTERN,
            description="The same key with the same request returns the first artifact (24 h); with a different "
                        "request, 409.")] = None,
    ) -> AimableGenerated:
        """Created at once (201, `status: processing`); poll GET …/artifacts/{id} until `completed`."""
        result = await generation.generate_artifact(store(), a, generation.request_of(body, idempotency_key))
        art = result.artifact
        return AimableGenerated(id=art.artifact_id, document_type=art.document_type or art.artifact_type,
                                format=art.format, status=art.status, thread_id=art.thread_id,
                                created_at=art.created_at)

    return router
