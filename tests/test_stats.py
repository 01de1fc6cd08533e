"""store_stats: a tenant's counts, storage and job backlog, read through the store client as every door does."""

from __future__ import annotations

import base64

import anyio
import pytest
from mcp import Client
from mcp.server import MCPServer

from artifact_mcp.server.runtime import Runtime
from artifact_mcp.storage.access import Access, local_principal
from artifact_mcp.storage.models import Scope
from artifact_mcp.storage.usecases.stats import store_stats
from tests.conftest import call, indexed

pytestmark = pytest.mark.anyio

OTHER = {"org_id": "other", "workspace_id": "w", "namespace_id": "n"}


@pytest.fixture
def era() -> str:
    return "auto"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_stats_count_latest_versions_blobs_once_and_stay_in_scope(
        client: Client, app_runtime: tuple[MCPServer, Runtime]) -> None:
    runtime = app_runtime[1]
    home = Access(scope=runtime.default_scope, principal=local_principal(runtime.default_scope))
    other = Access(scope=Scope(**OTHER), principal=home.principal)
    empty = await store_stats(runtime.store, home)
    assert (empty.artifacts, empty.versions, empty.blobs, empty.jobs_pending) == (0, 0, 0, 0)

    note = await call(client, "create_artifact", {"name": "note", "content": "first words"})
    note = (await call(client, "update_artifact", {"artifact_id": note["artifact_id"],
                                                   "content": "second, longer words"}))["artifact"]
    await call(client, "create_artifact", {"name": "cfg", "content": '{"a": 1}', "artifact_type": "json",
                                           "status": "archived"})
    blob = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    a = await call(client, "upload_artifact", {"name": "one.png", "data_base64": b64(blob)})
    b = await call(client, "upload_artifact", {"name": "two.png", "data_base64": b64(blob)})  # same bytes
    await call(client, "create_artifact", {"name": "elsewhere", "content": "not ours", **OTHER})
    await call(client, "create_artifact", {"name": "brief", "content": "gone soon", "ttl_seconds": 1})

    stats = await store_stats(runtime.store, home)
    # Right after the writes, their index jobs are waiting or running (or already done): never more than were made.
    assert stats.jobs_pending + stats.jobs_running <= 6
    if stats.jobs_pending:
        assert stats.oldest_pending_at is not None and stats.oldest_pending_seconds is not None

    await anyio.sleep(1.1)  # "brief" expires: no longer counted as an artifact, still a version until swept
    with anyio.fail_after(30):
        for art in (note, a, b):
            await indexed(client, art["artifact_id"])
        while (stats := await store_stats(runtime.store, home)).jobs_pending + stats.jobs_running:
            await anyio.sleep(0.05)
    assert stats.artifacts == 4
    assert stats.by_type == {"document": 1, "json": 1, "file": 2}
    assert stats.by_status == {"ready": 3, "archived": 1}
    assert stats.by_status.get("archived") == 1
    assert stats.versions == 6  # note's two, cfg, the two uploads, brief
    assert stats.blobs == 1 and stats.blob_bytes == len(blob)
    assert stats.content_bytes >= 2 * len(blob) + len("second, longer words")
    assert stats.jobs_failed == 0 and stats.oldest_pending_at is None

    theirs = await store_stats(runtime.store, other)
    assert (theirs.artifacts, theirs.versions, theirs.blobs) == (1, 1, 0)
