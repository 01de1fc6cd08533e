"""The MechaMental Artifacts API under `/v1/orgs/{org_id}/workspaces/{workspace_id}/namespaces/{namespace_id}`.

Each route validates into a use case's body, checks the principal's access to the path's scope, and calls the
use case the MCP tools call (storage/usecases); nothing here repeats what a use case does.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Header, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError

from artifact_mcp.server.routes.rest_common import (
    CONFLICT,
    ERRORS,
    NOT_FOUND,
    ErrorBody,
    api_key,
    bearer,
    declared_type,
    route_class,
)
from artifact_mcp.server.routes.rest_models import ListParams, UploadForm
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.storage.access import Access, Permission
from artifact_mcp.storage.errors import TooLarge
from artifact_mcp.storage.generate.models import IDEMPOTENCY_KEY_PATTERN, GenerateResult
from artifact_mcp.storage.models import (
    ARTIFACT_ID_PATTERN,
    ID_PATTERN,
    Artifact,
    ArtifactPage,
    DeleteResult,
    JobList,
    PromoteRequest,
    PromoteResult,
    QueryRequest,
    QueryResult,
    Scope,
    UpdateResult,
)
from artifact_mcp.storage.usecases import artifacts, generation, recall
from artifact_mcp.storage.usecases.bodies import (
    CreateBody,
    DeleteOptions,
    DownloadUrl,
    DownloadUrlOptions,
    GenerateBody,
    ReadOptions,
    UpdateBody,
    VersionList,
)
from artifact_mcp.storage.usecases.links import download_url

PREFIX = "/v1/orgs/{org_id}/workspaces/{workspace_id}/namespaces/{namespace_id}"

ArtifactIdPath = Annotated[str, Path(pattern=ARTIFACT_ID_PATTERN, description="Any version id, e.g. 'art_3f2a…'.")]
ScopePath = Annotated[str, Path(pattern=ID_PATTERN, min_length=1, max_length=128)]
# A model holding an UploadFile is still a form: say multipart, or the OpenAPI document says urlencoded.
MultipartForm = Annotated[UploadForm, Form(media_type="multipart/form-data")]
IdempotencyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255, pattern=IDEMPOTENCY_KEY_PATTERN,
    description="Makes retries safe: the same key with the same request returns the first artifact (24 h); with a "
                "different request, 409.")]


def mechamental_router(runtime: Runtime) -> APIRouter:
    def access(need: Permission) -> Callable[..., Awaitable[Access]]:
        async def check(request: Request, org_id: ScopePath, workspace_id: ScopePath, namespace_id: ScopePath,
                        _bearer: Annotated[Any, Security(bearer)], _key: Annotated[Any, Security(api_key)]) -> Access:
            scope = Scope(org_id=org_id, workspace_id=workspace_id, namespace_id=namespace_id)
            return Access.check(runtime.principal_for(request), scope, need)

        return check

    Read = Annotated[Access, Depends(access("read"))]
    Write = Annotated[Access, Depends(access("write"))]
    Admin = Annotated[Access, Depends(access("admin"))]
    store = lambda: runtime.store  # noqa: E731 - read at call time: the store opens after the routes are built
    limit = runtime.settings.max_upload_bytes

    router = APIRouter(prefix=PREFIX, tags=["MechaMental artifacts"], route_class=route_class(runtime),
                       responses=ERRORS)

    @router.get("/artifacts", operation_id="list_artifacts", summary="List artifacts", response_model=ArtifactPage)
    async def list_artifacts(a: Read, p: Annotated[ListParams, Query()]) -> ArtifactPage:
        """Newest first, with filters and keyset pagination: pass `next_cursor` back as `cursor`."""
        return await artifacts.list_artifacts(store(), a, p)

    @router.post("/artifacts", operation_id="create_artifact", summary="Create an artifact from text or JSON",
                 status_code=201, response_model=Artifact)
    async def create_artifact(a: Write, body: CreateBody) -> Artifact:
        """Stores `content` (text or a JSON object/array). Indexing runs in the background (`status` pending)
        unless `wait_for_index` is true."""
        return await artifacts.create_artifact(store(), a, body)

    @router.post("/artifacts/upload", operation_id="upload_artifact", summary="Create an artifact from a file",
                 status_code=201, response_model=Artifact)
    async def upload_artifact(a: Write, form: MultipartForm) -> Artifact:
        """multipart/form-data: the `file` part and optional fields (tags and keywords as comma lists,
        metadata as JSON text). The mime type is detected from the bytes and file name unless given; the file
        name is stored as a safe base name."""
        upload = form.file
        if upload.size is not None and upload.size > limit:
            raise TooLarge(f"file is {upload.size} bytes, over the {limit}-byte limit "
                           "(ARTIFACT_MCP_MAX_UPLOAD_BYTES); nothing was stored")
        # The spooled upload (memory up to 1 MiB, then a temporary file) is copied to the blob store in chunks.
        await upload.seek(0)
        return await artifacts.upload_stream(store(), a, form.fields(), upload.file, upload.filename or None,
                                             declared_type(upload.content_type))

    @router.get("/artifacts/{artifact_id}", operation_id="get_artifact", summary="Get an artifact",
                response_model=Artifact, responses=NOT_FOUND)
    async def get_artifact(a: Read, artifact_id: ArtifactIdPath, p: Annotated[ReadOptions, Query()]) -> Artifact:
        """Metadata plus content (`content` / `content_text`, capped at `max_chars`)."""
        return await artifacts.get_artifact(store(), a, artifact_id, p)

    @router.put("/artifacts/{artifact_id}", operation_id="update_artifact", summary="Update an artifact",
                response_model=UpdateResult, responses={**NOT_FOUND, **CONFLICT})
    @router.patch("/artifacts/{artifact_id}", operation_id="patch_artifact", summary="Update an artifact (as PUT)",
                  response_model=UpdateResult, responses={**NOT_FOUND, **CONFLICT})
    async def update_artifact(a: Write, artifact_id: ArtifactIdPath, body: UpdateBody) -> UpdateResult:
        """New `content` or `data_base64` makes a new version; anything else changes the latest version in
        place. `expected_version` guards against lost updates (409)."""
        return await artifacts.update_artifact(store(), a, artifact_id, body, max_upload_bytes=limit)

    @router.delete("/artifacts/{artifact_id}", operation_id="delete_artifact", summary="Delete an artifact",
                   response_model=DeleteResult, responses=NOT_FOUND)
    async def delete_artifact(a: Write, artifact_id: ArtifactIdPath,
                              p: Annotated[DeleteOptions, Query()]) -> DeleteResult:
        """Every version (default) or, with `all_versions=false`, only this one. Cannot be undone."""
        return await artifacts.delete_artifact(store(), a, artifact_id, p)

    @router.get("/artifacts/{artifact_id}/versions", operation_id="list_artifact_versions",
                summary="List an artifact's versions", response_model=VersionList, responses=NOT_FOUND)
    async def list_versions(a: Read, artifact_id: ArtifactIdPath) -> VersionList:
        """Every version, oldest first."""
        return await artifacts.list_versions(store(), a, artifact_id)

    async def link(a: Read, artifact_id: ArtifactIdPath, p: Annotated[DownloadUrlOptions, Query()]) -> DownloadUrl:
        """A link to this version's bytes that needs no token, valid `expires_in` seconds (60-86400, default
        3600): `{artifact_id, download_url, expires_in, file_name, content_type, file_size_bytes}`. The link
        streams the bytes (Range honoured); it stops working when it expires, the version is deleted or the
        token that asked for it is revoked."""
        return await download_url(store(), a, artifact_id, p.expires_in, runtime.link_policy)

    router.add_api_route("/artifacts/{artifact_id}/download", link, methods=["GET"], operation_id="download_artifact",
                         summary="Get a signed download link", response_model=DownloadUrl, responses=NOT_FOUND)
    router.add_api_route("/artifacts/{artifact_id}/download-url", link, methods=["GET"],
                         operation_id="get_artifact_download_url", summary="Get a signed download link (alias)",
                         response_model=DownloadUrl, responses=NOT_FOUND)

    @router.get("/threads/{thread_id}/artifacts", operation_id="list_thread_artifacts",
                summary="List a thread's artifacts", response_model=ArtifactPage)
    async def thread_artifacts(a: Read, thread_id: ScopePath, p: Annotated[ListParams, Query()]) -> ArtifactPage:
        """The artifacts of one thread, newest first, with the same filters and paging as the list."""
        if p.thread_id is not None and p.thread_id != thread_id:
            raise RequestValidationError([{
                "type": "value_error", "loc": ("query", "thread_id"), "input": p.thread_id, "ctx": {},
                "msg": f"the path names thread {thread_id!r}; leave thread_id out of the query"}])
        return await artifacts.list_artifacts(store(), a, p, thread_id=thread_id)

    @router.post("/artifacts/query", operation_id="query_artifacts", summary="Search artifacts",
                 response_model=QueryResult)
    async def query_artifacts(a: Read, body: QueryRequest) -> QueryResult:
        """Hybrid search (semantic + BM25): `results` with `score` and `matched_chunk`, `combined_context`
        ready to cite, `total_results`. Also searches sources promoted anywhere in the workspace."""
        return await recall.query_artifacts(store(), a, body)

    @router.post("/artifacts/{artifact_id}/promote", operation_id="promote_artifact",
                 summary="Promote an artifact to a knowledge source", response_model=PromoteResult,
                 responses=NOT_FOUND)
    async def promote(a: Admin, artifact_id: ArtifactIdPath,
                      body: PromoteRequest | None = None) -> PromoteResult:
        """Pinned, TTL cleared, searchable from every namespace of the workspace. Idempotent. Needs admin."""
        return await recall.promote_artifact(store(), a, artifact_id, body or PromoteRequest())

    @router.post("/artifacts/generate", operation_id="generate_artifact", status_code=202,
                 summary="Generate a document (summary, report, transcript, digest) from artifacts",
                 response_model=GenerateResult,
                 responses={**NOT_FOUND, 409: {"model": ErrorBody, "description": "Idempotency-Key reused for a "
                                                                                  "different request."}})
    async def generate_artifact(a: Write, body: GenerateBody,
                                idempotency_key: IdempotencyHeader = None) -> GenerateResult:
        """Accepted at once (202): the new artifact (status `processing`) and its job; it turns `completed` (or
        `failed` with `generation_error`) when the job ends (`wait: true` answers only then). Written by the
        server's extractive summarizer (REST clients offer no model to sample); transcripts are verbatim."""
        return await generation.generate_artifact(store(), a, generation.request_of(body, idempotency_key),
                                                  wait=body.wait, wait_timeout_seconds=body.wait_timeout_seconds)

    @router.get("/artifacts/{artifact_id}/jobs", operation_id="list_artifact_jobs",
                summary="List an artifact's background jobs", response_model=JobList, responses=NOT_FOUND)
    async def list_jobs(a: Read, artifact_id: ArtifactIdPath) -> JobList:
        """Indexing and generation jobs of every version, newest first."""
        return await recall.list_jobs(store(), a, artifact_id)

    return router
