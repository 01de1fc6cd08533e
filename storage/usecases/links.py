"""The download-link use case: a URL to one version's bytes, in whatever form this server can give one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import anyio

from artifact_mcp.storage.access import Access
from artifact_mcp.storage.errors import InvalidInput
from artifact_mcp.storage.links import DownloadLink, DownloadTarget
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.usecases.bodies import DownloadUrl

NATIVE_NOTE = "presigned by the blob store: it cannot be revoked before it expires"


@dataclass(frozen=True)
class LinkPolicy:
    """What kind of link this server hands out: signed links to itself over HTTP (`public_url`), `file://` paths
    on stdio (a local user), or, with `native`, the blob store's own presigned URLs where it can sign."""

    transport: Literal["http", "stdio"]
    public_url: str
    native: bool = False


async def _native_url(store: StoreClient, link: DownloadLink) -> str | None:
    """The blob store's own presigned URL (s3fs, gcsfs…), when supported."""
    if link.blob_key is None:
        return None
    blobs = store.blobs
    key = link.blob_key
    try:
        return await anyio.to_thread.run_sync(lambda: blobs.fs.sign(blobs.path(key), expiration=link.expires_in))
    except NotImplementedError:
        return None


def _stdio_url(store: StoreClient, link: DownloadLink) -> str:
    if link.blob_key is None:
        raise InvalidInput(
            f"no download link in stdio mode for {link.artifact_id}: it is text/JSON content kept in the catalog, "
            f"not a file. Read it with get_artifact (or the resource artifact://{link.artifact_id}/content)"
        )
    path = store.blobs.local_path(link.blob_key)
    if path is None:
        protocol = store.blobs.url.split("://", 1)[0]
        raise InvalidInput(
            f"no download link can be made in stdio mode: this server's files are in a '{protocol}://' blob store, "
            "which has no local path and cannot sign URLs. Read the bytes with the resource "
            f"artifact://{link.artifact_id}/content, or run the server over HTTP (--transport http) for links"
        )
    return Path(path).as_uri()


async def download_url(store: StoreClient, access: Access, artifact_id: str, expires_in: int,
                       policy: LinkPolicy) -> DownloadUrl:
    link = await store.download_link(access.scope, artifact_id, expires_in, access.principal.token_id)
    expires_at: datetime | None = link.expires_at
    note = None
    url = await _native_url(store, link) if policy.native else None
    if url is not None:
        note = NATIVE_NOTE
    elif policy.transport == "http":
        url = f"{policy.public_url}/download/{link.token}"
    else:
        url = _stdio_url(store, link)
        expires_at, note = None, "a file on this machine (stdio mode): open it directly; it does not expire"
    return DownloadUrl(artifact_id=link.artifact_id, download_url=url, expires_in=link.expires_in,
                       expires_at=expires_at, file_name=link.file_name, content_type=link.content_type,
                       file_size_bytes=link.size_bytes, note=note)


async def file_target(store: StoreClient, access: Access, artifact_id: str) -> DownloadTarget:
    """What a download of this version serves, for doors that authenticate the caller themselves (the REST mirror,
    the console): the bytes are then streamed from the blob store."""
    return await store.download_target(access.scope, artifact_id)
