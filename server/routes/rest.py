"""REST mirror of the artifact tools: the MechaMental routes under `/v1/orgs/{org}/workspaces/{ws}/namespaces/{ns}`.

Same store client, same principals and permissions as the MCP tools, same pydantic models (request models are
derived from the tools' inputs in `rest_models`, responses are the storage/tool output models).

Every route checks, in this order: a valid token (401), the body size (413, before the body is read), the
path/query/body shapes (422, FastAPI's `detail` list), the principal's scope and permission (403), then the store
(404/409/413/422).
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Header, Path, Query, Request, Response, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive

from artifact_mcp.server.auth.http import Unauthenticated, principal_of
from artifact_mcp.storage.access import Permission, Principal
from artifact_mcp.server.routes.rest_models import (
    CreateBody,
    DeleteParams,
    DownloadUrlParams,
    GenerateBody,
    GetParams,
    ListParams,
    PromoteBody,
    QueryBody,
    ThreadListParams,
    UpdateBody,
    UploadForm,
)
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.storage.errors import TooLarge
from artifact_mcp.storage.generate.models import IDEMPOTENCY_KEY_PATTERN, GenerateRequest, GenerateResult
from artifact_mcp.storage.models import (
    ARTIFACT_ID_PATTERN,
    ID_PATTERN,
    Artifact,
    ArtifactFields,
    ArtifactPage,
    ArtifactPatch,
    DeleteResult,
    JobList,
    ListQuery,
    NewArtifact,
    NewFileArtifact,
    PromoteRequest,
    PromoteResult,
    QueryRequest,
    QueryResult,
    Scope,
    UpdateResult,
)
from artifact_mcp.tools.artifacts import VersionList, decode_base64
from artifact_mcp.tools.download_links import DownloadUrl, _native_url

PREFIX = "/v1/orgs/{org_id}/workspaces/{workspace_id}/namespaces/{namespace_id}"
# Multipart framing and the descriptive form fields on top of the file itself.
MULTIPART_OVERHEAD = 1024 * 1024
# GET …/download redirects to a signed link valid this long: enough to follow the redirect, little to leak.
DOWNLOAD_REDIRECT_SECONDS = 60


class ErrorBody(BaseModel):
    """Errors other than validation: what went wrong, in words the caller can act on."""

    detail: str
    error: str


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid token (see the WWW-Authenticate header)."},
    403: {"model": ErrorBody, "description": "The token's principal may not do this in this scope."},
    413: {"model": ErrorBody, "description": "The request body or file is over the server's limit."},
    503: {"model": ErrorBody, "description": "The store is starting, stopping or changing owner; retry."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such artifact here."}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorBody,
                                                   "description": "expected_version is stale."}}

ArtifactIdPath = Annotated[str, Path(pattern=ARTIFACT_ID_PATTERN, description="Any version id, e.g. 'art_3f2a…'.")]
ScopePath = Annotated[str, Path(pattern=ID_PATTERN, min_length=1, max_length=128)]
# A model holding an UploadFile is still a form: say multipart, or the OpenAPI document says urlencoded.
MultipartForm = Annotated[UploadForm, Form(media_type="multipart/form-data")]


class Access(BaseModel):
    """Who is calling and the scope it may act on (checked)."""

    scope: Scope
    principal: Principal

    def author(self, claimed: str | None) -> str | None:
        """created_by/updated_by: an authenticated caller is recorded as its principal, whatever it claims."""
        return claimed if self.principal.trusted else self.principal.principal_id


class BodyTooLarge(HTTPException):
    """Raised while the body streams in; an HTTPException so FastAPI's body reading passes it through as is."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is over this route's {limit}-byte limit (ARTIFACT_MCP_MAX_UPLOAD_BYTES "
                              "sets it); send less, or a file through POST …/artifacts/upload")


def _limited(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return wrapped


def _route_class(runtime: Runtime) -> type[APIRoute]:
    settings = runtime.settings
    # JSON escaping makes text content longer than its bytes; base64 `data_base64` is 4/3 of them.
    json_limit = settings.max_upload_bytes * 4 // 3 + 1024 * 1024
    multipart_limit = settings.max_upload_bytes + MULTIPART_OVERHEAD

    class RestRoute(APIRoute):
        """Authentication and the body limit come before FastAPI reads or validates anything."""

        def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                if runtime.auth_enabled and principal_of(request) is None:
                    raise Unauthenticated()
                multipart = request.headers.get("content-type", "").startswith("multipart/")
                limit = multipart_limit if multipart else json_limit
                length = request.headers.get("content-length", "")
                if length.isdigit() and int(length) > limit:
                    raise TooLarge(f"request body is {length} bytes, over this route's {limit}-byte limit "
                                   "(ARTIFACT_MCP_MAX_UPLOAD_BYTES sets it); nothing was stored")
                # Chunked bodies carry no length: count the bytes as they arrive.
                request._receive = _limited(request.receive, limit)
                try:
                    return await handler(request)
                except HTTPException as exc:
                    if exc.status_code != 400:
                        raise
                    # FastAPI answers a body it cannot decode (not UTF-8, broken multipart) with a bare 400: give
                    # it the 422 `detail` list every other malformed input gets.
                    cause = exc.__cause__
                    msg = f"{exc.detail}: {cause}" if cause is not None else str(exc.detail)
                    raise RequestValidationError([{
                        "type": "json_invalid" if not multipart else "value_error", "loc": ("body",),
                        "msg": msg + ("; send UTF-8 JSON" if not multipart else "; send multipart/form-data"),
                        "input": None, "ctx": {}}]) from exc

            return guarded

    return RestRoute


def _validated(model: type[BaseModel], data: dict[str, Any], where: str = "body") -> Any:
    """A storage model built from already-validated input can still refuse it (e.g. metadata over 64 KiB):
    answer with the same 422 `detail` list as FastAPI's own validation."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        for err in errors:
            err["loc"] = (where, *err["loc"])
        raise RequestValidationError(errors) from None


def _fields(params: BaseModel) -> dict[str, Any]:
    return params.model_dump(include=set(ArtifactFields.model_fields) & set(type(params).model_fields))


def rest_router(runtime: Runtime) -> APIRouter:
    bearer = HTTPBearer(auto_error=False, description="A token from `artifact-mcp token create`.")
    api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same token, as X-API-Key.")

    def access(need: Permission) -> Callable[..., Awaitable[Access]]:
        async def check(request: Request, org_id: ScopePath, workspace_id: ScopePath, namespace_id: ScopePath,
                        _bearer: Annotated[Any, Security(bearer)], _key: Annotated[Any, Security(api_key)]) -> Access:
            principal = runtime.principal_for(request)
            scope = Scope(org_id=org_id, workspace_id=workspace_id, namespace_id=namespace_id)
            return Access(scope=principal.check(scope, need), principal=principal)

        return check

    Read = Annotated[Access, Depends(access("read"))]
    Write = Annotated[Access, Depends(access("write"))]
    Admin = Annotated[Access, Depends(access("admin"))]

    router = APIRouter(prefix=PREFIX, tags=["artifacts"], route_class=_route_class(runtime), responses=ERRORS)

    async def waited(a: Access, art: Artifact, wait: bool, timeout: float) -> Artifact:
        if not wait or art.is_indexed:
            return art
        return await runtime.store.wait_indexed(a.scope, art.artifact_id, timeout)

    async def list_page(a: Access, p: BaseModel, thread_id: str | None) -> ArtifactPage:
        data = p.model_dump()
        if thread_id is not None:
            data["thread_id"] = thread_id
        return await runtime.store.list(a.scope, _validated(ListQuery, data, "query"))

    @router.get("/artifacts", operation_id="list_artifacts", summary="List artifacts",
                response_model=ArtifactPage)
    async def list_artifacts(a: Read, p: Annotated[ListParams, Query()]) -> ArtifactPage:
        """Newest first, with filters and keyset pagination: pass `next_cursor` back as `cursor`."""
        return await list_page(a, p, None)

    @router.post("/artifacts", operation_id="create_artifact", summary="Create an artifact from text or JSON",
                 status_code=201, response_model=Artifact)
    async def create_artifact(a: Write, body: CreateBody) -> Artifact:  # type: ignore[valid-type]
        """Stores `content` (text or a JSON object/array). Indexing runs in the background (`status` pending)
        unless `wait_for_index` is true."""
        new = _validated(NewArtifact, {
            **_fields(body), "name": body.name, "artifact_type": body.artifact_type, "status": body.status,
            "content": body.content, "file_name": body.file_name, "mime_type": body.mime_type,
            "created_by": a.author(body.created_by)})
        art = await runtime.store.create(a.scope, new)
        return await waited(a, art, body.wait_for_index, body.wait_timeout_seconds)

    @router.post("/artifacts/upload", operation_id="upload_artifact", summary="Create an artifact from a file",
                 status_code=201, response_model=Artifact)
    async def upload_artifact(a: Write, form: MultipartForm) -> Artifact:
        """multipart/form-data: the `file` part and optional fields (tags and keywords as comma lists,
        metadata as JSON text). The mime type is detected from the bytes and file name unless given."""
        upload = form.file
        limit = runtime.settings.max_upload_bytes
        if upload.size is not None and upload.size > limit:
            raise TooLarge(f"file is {upload.size} bytes, over the {limit}-byte limit "
                           "(ARTIFACT_MCP_MAX_UPLOAD_BYTES); nothing was stored")
        file_name = form.file_name or upload.filename or None
        name = form.name or file_name
        if not name:
            raise RequestValidationError([{"type": "missing", "loc": ("body", "name"), "input": None, "ctx": {},
                                           "msg": "name is required when the file part has no filename"}])
        fields = {**_fields(form), "tags": form.tags, "keywords": form.keywords, "metadata": form.metadata}
        new = _validated(NewFileArtifact, {
            **fields, "name": name, "artifact_type": form.artifact_type, "status": form.status,
            "file_name": file_name, "mime_type": form.mime_type or _declared_type(upload.content_type),
            "created_by": a.author(form.created_by)})
        # The spooled upload (memory up to 1 MiB, then a temporary file) is copied to the blob store in chunks.
        await upload.seek(0)
        art = await runtime.store.create_from_stream(a.scope, new, upload.file)
        return await waited(a, art, form.wait_for_index, form.wait_timeout_seconds)

    @router.get("/artifacts/{artifact_id}", operation_id="get_artifact", summary="Get an artifact",
                response_model=Artifact, responses=NOT_FOUND)
    async def get_artifact(a: Read, artifact_id: ArtifactIdPath, p: Annotated[GetParams, Query()]) -> Artifact:
        """Metadata plus content (`content` / `content_text`, capped at `max_chars`)."""
        return await runtime.store.get(a.scope, artifact_id, include_expired=p.include_expired,
                                       max_chars=p.max_chars)

    @router.patch("/artifacts/{artifact_id}", operation_id="update_artifact", summary="Update an artifact",
                  response_model=UpdateResult, responses={**NOT_FOUND, **CONFLICT})
    async def update_artifact(a: Write, artifact_id: ArtifactIdPath,
                              body: UpdateBody) -> UpdateResult:  # type: ignore[valid-type]
        """New `content` or `data_base64` makes a new version; anything else changes the latest version in
        place. `expected_version` guards against lost updates (409)."""
        if body.content is not None and body.data_base64 is not None:
            raise RequestValidationError([{"type": "value_error", "loc": ("body", "data_base64"), "input": None,
                                           "msg": "give either content or data_base64, not both", "ctx": {}}])
        data = (decode_base64(body.data_base64, runtime.settings.max_upload_bytes)
                if body.data_base64 is not None else None)
        patch = _validated(ArtifactPatch, {
            **_fields(body), "name": body.name, "artifact_type": body.artifact_type, "status": body.status,
            "content": body.content, "data": data, "file_name": body.file_name, "mime_type": body.mime_type,
            "clear_ttl": body.clear_ttl, "expected_version": body.expected_version,
            "updated_by": a.author(body.updated_by)})
        result = await runtime.store.update(a.scope, artifact_id, patch)
        if result.new_version:
            result.artifact = await waited(a, result.artifact, body.wait_for_index, body.wait_timeout_seconds)
        return result

    @router.delete("/artifacts/{artifact_id}", operation_id="delete_artifact", summary="Delete an artifact",
                   response_model=DeleteResult, responses=NOT_FOUND)
    async def delete_artifact(a: Write, artifact_id: ArtifactIdPath,
                              p: Annotated[DeleteParams, Query()]) -> DeleteResult:
        """Every version (default) or, with `all_versions=false`, only this one. Cannot be undone."""
        return await runtime.store.delete(a.scope, artifact_id, all_versions=p.all_versions)

    @router.get("/artifacts/{artifact_id}/versions", operation_id="list_artifact_versions",
                summary="List an artifact's versions", response_model=VersionList, responses=NOT_FOUND)
    async def list_versions(a: Read, artifact_id: ArtifactIdPath) -> VersionList:
        """Every version, oldest first."""
        versions = await runtime.store.versions(a.scope, artifact_id)
        return VersionList(root_artifact_id=versions[0].root_artifact_id, versions=versions, total=len(versions))

    async def link(a: Access, artifact_id: str, expires_in: int) -> DownloadUrl:
        got = await runtime.store.download_link(a.scope, artifact_id, expires_in, a.principal.token_id)
        url = await _native_url(runtime, got)
        note = "presigned by the blob store: it cannot be revoked before it expires" if url is not None else None
        url = url or f"{runtime.public_url}/download/{got.token}"
        return DownloadUrl(artifact_id=got.artifact_id, download_url=url, expires_in=got.expires_in,
                           expires_at=got.expires_at, file_name=got.file_name, content_type=got.content_type,
                           file_size_bytes=got.size_bytes, note=note)

    @router.get("/artifacts/{artifact_id}/download-url", operation_id="get_artifact_download_url",
                summary="Get a signed download link", response_model=DownloadUrl, responses=NOT_FOUND)
    async def download_url(a: Read, artifact_id: ArtifactIdPath,
                           p: Annotated[DownloadUrlParams, Query()]) -> DownloadUrl:  # type: ignore[valid-type]
        """A link to this version's bytes that needs no token, valid `expires_in` seconds (60-86400); it stops
        working when it expires, the version is deleted or the token that asked for it is revoked."""
        return await link(a, artifact_id, p.expires_in)

    @router.get("/artifacts/{artifact_id}/download", operation_id="download_artifact",
                summary="Download an artifact's bytes", response_class=RedirectResponse, status_code=307,
                responses={**NOT_FOUND, 307: {"description": "To a one-minute signed link serving the bytes "
                                                             "(Range requests supported)."}})
    async def download(a: Read, artifact_id: ArtifactIdPath) -> RedirectResponse:
        """Redirects (307) to a short-lived signed link, which streams the bytes (files, or the text of created
        content) with their media type and `Content-Disposition: attachment`."""
        got = await link(a, artifact_id, DOWNLOAD_REDIRECT_SECONDS)
        return RedirectResponse(got.download_url, status_code=307)

    @router.get("/threads/{thread_id}/artifacts", operation_id="list_thread_artifacts",
                summary="List a thread's artifacts", response_model=ArtifactPage)
    async def thread_artifacts(a: Read, thread_id: ScopePath,
                               p: Annotated[ThreadListParams, Query()]) -> ArtifactPage:
        """The artifacts of one thread, newest first, with the same filters and paging as the list."""
        return await list_page(a, p, thread_id)

    @router.post("/artifacts/query", operation_id="query_artifacts", summary="Search artifacts",
                 response_model=QueryResult)
    async def query_artifacts(a: Read, body: QueryBody) -> QueryResult:  # type: ignore[valid-type]
        """Hybrid search (semantic + BM25): `results` with `score` and `matched_chunk`, `combined_context`
        ready to cite, `total_results`. Also searches sources promoted anywhere in the workspace."""
        req = _validated(QueryRequest, body.model_dump(include=set(QueryRequest.model_fields)))
        return await runtime.store.query(a.scope, req)

    @router.post("/artifacts/{artifact_id}/promote", operation_id="promote_artifact",
                 summary="Promote an artifact to a knowledge source", response_model=PromoteResult,
                 responses=NOT_FOUND)
    async def promote(a: Admin, artifact_id: ArtifactIdPath,
                      body: PromoteBody | None = None) -> PromoteResult:  # type: ignore[valid-type]
        """Pinned, TTL cleared, searchable from every namespace of the workspace. Idempotent. Needs admin."""
        req = PromoteRequest(source_name=body.source_name, description=body.description) if body else PromoteRequest()
        return await runtime.store.promote(a.scope, artifact_id, req)

    @router.post("/artifacts/generate", operation_id="generate_artifact", status_code=202,
                 summary="Generate a document (summary, report, transcript, digest) from artifacts",
                 response_model=GenerateResult,
                 responses={**NOT_FOUND, 409: {"model": ErrorBody, "description": "Idempotency-Key reused for a "
                                                                                  "different request."}})
    async def generate_artifact(
        a: Write, body: GenerateBody,  # type: ignore[valid-type]
        idempotency_key: Annotated[str | None, Header(
            alias="Idempotency-Key", min_length=1, max_length=255, pattern=IDEMPOTENCY_KEY_PATTERN,
            description="Makes retries safe: the same key with the same request returns the first artifact (24 h); "
                        "with a different request, 409.")] = None,
    ) -> GenerateResult:
        """Accepted at once (202): the new artifact (status `processing`) and its job; it turns `completed` (or
        `failed` with `generation_error`) when the job ends (`wait: true` answers only then). Written by the
        server's extractive summarizer (REST clients offer no model to sample); transcripts are verbatim."""
        req = _validated(GenerateRequest, {**body.model_dump(include=set(GenerateRequest.model_fields)),
                                           "idempotency_key": idempotency_key})
        result = await runtime.store.generate(a.scope, a.principal.principal_id, req, created_by=a.author(None))
        if body.wait and result.artifact.status == "processing":
            art = await runtime.store.wait_generated(a.scope, result.artifact.artifact_id, body.wait_timeout_seconds)
            jobs = await runtime.store.list_jobs(a.scope, art.artifact_id)
            job = next((j for j in jobs.jobs if j.job_id == result.job.job_id), result.job)
            result = result.model_copy(update={"artifact": art, "job": job})
        return result

    @router.get("/artifacts/{artifact_id}/jobs", operation_id="list_artifact_jobs",
                summary="List an artifact's background jobs", response_model=JobList, responses=NOT_FOUND)
    async def list_jobs(a: Read, artifact_id: ArtifactIdPath) -> JobList:
        """Indexing jobs of every version, newest first."""
        return await runtime.store.list_jobs(a.scope, artifact_id)

    return router


def _declared_type(content_type: str | None) -> str | None:
    # Clients label every part they cannot name application/octet-stream: let detection do better then.
    if not content_type or content_type.split(";")[0].strip().lower() == "application/octet-stream":
        return None
    return content_type
