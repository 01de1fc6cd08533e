"""Artifact use cases: list, get, create, upload (bytes, stream, server path), update, delete, versions."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import BinaryIO

import anyio

from artifact_mcp.storage.access import Access
from artifact_mcp.storage.errors import MODEL_NOT_PREPARED, InvalidInput, TooLarge
from artifact_mcp.storage.models import (
    Artifact,
    ArtifactFields,
    ArtifactPage,
    ArtifactPatch,
    DeleteResult,
    ListOrder,
    NewArtifact,
    NewFileArtifact,
    SummaryPage,
    ThreadSummary,
    UpdateResult,
)
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.paths import open_allowed_file
from artifact_mcp.storage.text import printable, safe_file_name
from artifact_mcp.storage.usecases.bodies import (
    CreateBody,
    DeleteOptions,
    ListBody,
    ReadOptions,
    UpdateBody,
    UploadBody,
    UploadFields,
    VersionList,
    WaitParams,
)
from artifact_mcp.storage.usecases.progress import Progress, report


def decode_base64(data: str, limit: int) -> bytes:
    # Reject by size before decoding, so an oversize upload costs nothing.
    approx = len(data) * 3 // 4
    if approx > limit + 3:
        raise TooLarge(
            f"data is about {approx} bytes decoded, over the {limit}-byte limit (ARTIFACT_MCP_MAX_UPLOAD_BYTES)"
        )
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            "data_base64 is not valid base64 (standard alphabet A-Z a-z 0-9 + /, '=' padding, no line breaks)"
        ) from None


def _fields(body: ArtifactFields) -> dict[str, object]:
    return body.model_dump(include=set(ArtifactFields.model_fields))


def _named(body: UploadFields, file_name: str | None) -> tuple[str, str | None]:
    """(name, file name) of an upload: the file name reduced to a safe base name, the name defaulting to it."""
    # body.file_name was reduced by its model already; `file_name` comes from the transport (a multipart part's
    # filename, a server file's base name) and gets the same rule here.
    safe = body.file_name
    if safe is None:
        try:
            safe = safe_file_name(file_name)
        except ValueError as exc:
            raise InvalidInput(f"file name {printable(repr(file_name))} {exc}; pass a file_name without "
                               "them") from None
    name = body.name or safe
    if not name:
        raise InvalidInput("name is required when the upload has no usable file name (give `name`, or a file_name "
                           "with a base name)")
    return name, safe


async def await_index(store: StoreClient, access: Access, art: Artifact, wait: WaitParams,
                      progress: Progress | None) -> Artifact:
    if not wait.wait_for_index or art.is_indexed:
        return art
    if not await store.model_available():
        # Queued until `artifact-mcp model prepare` has run: waiting the whole timeout would only delay the answer.
        await report(progress, 0.0, f"indexing waits: {MODEL_NOT_PREPARED}")
        return art

    async def on_state(state: str, fraction: float) -> None:
        await report(progress, fraction, f"indexing: {state}")

    return await store.wait_indexed(access.scope, art.artifact_id, wait.wait_timeout_seconds, on_state)


async def list_artifacts(store: StoreClient, access: Access, body: ListBody, thread_id: str | None = None,
                         order: ListOrder = "newest") -> ArtifactPage:
    return await store.list(access.scope, body.to_query(thread_id).model_copy(update={"order": order}))


async def list_summaries(store: StoreClient, access: Access, body: ListBody) -> SummaryPage:
    """`list_artifacts`'s page as cards: what an agent chooses by, without every field of every row."""
    return await store.list_summaries(access.scope, body.to_query())


async def get_artifact(store: StoreClient, access: Access, artifact_id: str, opts: ReadOptions) -> Artifact:
    return await store.get(access.scope, artifact_id, include_expired=opts.include_expired, max_chars=opts.max_chars)


async def create_artifact(store: StoreClient, access: Access, body: CreateBody,
                          progress: Progress | None = None) -> Artifact:
    new = NewArtifact(**_fields(body), name=body.name, artifact_type=body.artifact_type, status=body.status,
                      content=body.content, file_name=body.file_name, mime_type=body.mime_type,
                      created_by=access.author(body.created_by))
    return await await_index(store, access, await store.create(access.scope, new), body, progress)


async def upload_stream(store: StoreClient, access: Access, body: UploadFields, fileobj: BinaryIO,
                        file_name: str | None, declared_mime: str | None = None,
                        progress: Progress | None = None) -> Artifact:
    """A file read from `fileobj` in pieces (a multipart part, an open server file): never whole in memory."""
    name, safe = _named(body, file_name)
    new = NewFileArtifact(**_fields(body), name=name, artifact_type=body.artifact_type, status=body.status,
                          file_name=safe, mime_type=body.mime_type or declared_mime,
                          created_by=access.author(body.created_by))
    await report(progress, 0.5, "storing")
    art = await store.create_from_stream(access.scope, new, fileobj)
    await report(progress, 1.0, "stored")
    return await await_index(store, access, art, body, progress)


async def upload_artifact(store: StoreClient, access: Access, body: UploadBody, *, allowed_roots: Sequence[str],
                          max_upload_bytes: int, progress: Progress | None = None) -> Artifact:
    """A file given as base64 bytes or as a path under the server's allowed roots."""
    if (body.data_base64 is None) == (body.path is None):
        raise InvalidInput("give exactly one of data_base64 (the bytes, base64) or path (a server file)")
    if body.path is not None:
        file, base_name = await anyio.to_thread.run_sync(open_allowed_file, body.path, list(allowed_roots),
                                                         max_upload_bytes)
        with file:
            return await upload_stream(store, access, body, file, base_name, progress=progress)
    assert body.data_base64 is not None
    data = decode_base64(body.data_base64, max_upload_bytes)
    name, safe = _named(body, None)
    await report(progress, 0.5, "storing")
    new = NewArtifact(**_fields(body), name=name, artifact_type=body.artifact_type, status=body.status, data=data,
                      file_name=safe, mime_type=body.mime_type, created_by=access.author(body.created_by))
    art = await store.create(access.scope, new)
    await report(progress, 1.0, "stored")
    return await await_index(store, access, art, body, progress)


async def update_artifact(store: StoreClient, access: Access, artifact_id: str, body: UpdateBody, *,
                          max_upload_bytes: int, progress: Progress | None = None) -> UpdateResult:
    if body.content is not None and body.data_base64 is not None:
        raise InvalidInput("give either content or data_base64, not both")
    data = decode_base64(body.data_base64, max_upload_bytes) if body.data_base64 is not None else None
    patch = ArtifactPatch(
        **_fields(body), name=body.name, artifact_type=body.artifact_type, status=body.status, content=body.content,
        data=data, file_name=body.file_name, mime_type=body.mime_type, clear_ttl=body.clear_ttl,
        expected_version=body.expected_version, updated_by=access.author(body.updated_by),
    )
    result = await store.update(access.scope, artifact_id, patch)
    if result.new_version:
        result.artifact = await await_index(store, access, result.artifact, body, progress)
    return result


async def delete_artifact(store: StoreClient, access: Access, artifact_id: str, opts: DeleteOptions) -> DeleteResult:
    return await store.delete(access.scope, artifact_id, all_versions=opts.all_versions)


async def list_versions(store: StoreClient, access: Access, artifact_id: str) -> VersionList:
    versions = await store.versions(access.scope, artifact_id)
    return VersionList(root_artifact_id=versions[0].root_artifact_id, versions=versions, total=len(versions))


async def list_threads(store: StoreClient, access: Access, limit: int = 200) -> list[ThreadSummary]:
    """The scope's threads, most recently written first."""
    return await store.threads(access.scope, limit)


async def list_sources(store: StoreClient, access: Access, body: ListBody) -> ArtifactPage:
    """The scope's artifacts promoted to knowledge sources, newest first."""
    return await store.list(access.scope, body.to_query().model_copy(update={"promoted_only": True}))
