"""Storage behaviour: blob dedup and garbage collection, the TTL sweeper, persistence across re-opens.

Driven through the MCP session where possible; the sweeper and the collector are called on the
owning process's ArtifactStore (`runtime.store.store`), as its housekeeping task would.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid

import anyio
import duckdb
import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from mcp import Client, MCPError
from mcp.server import MCPServer

from artifact_mcp.server.app import build_app
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.server.settings import Settings
from artifact_mcp.storage import blobs as blobs_module
from artifact_mcp.storage.blobs import blob_key
from artifact_mcp.storage.repositories.duckdb.database import DuckDBRepositories
from artifact_mcp.storage.repositories.duckdb.migrations import MIGRATIONS
from artifact_mcp.storage.repositories.postgres.database import PostgresRepositories
from artifact_mcp.storage.repositories.postgres.migrations import MIGRATIONS as PG_MIGRATIONS
from artifact_mcp.storage.store import ArtifactStore
from tests.conftest import call, call_error

pytestmark = pytest.mark.anyio


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def key_of(data: bytes) -> str:
    return blob_key(hashlib.sha256(data).hexdigest())


@pytest.fixture(autouse=True)
def _grace_elapsed(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL the blob store is shared by replicas and spares blobs written in the last
    SHARED_GRACE_SECONDS (tests/test_s3_replicas.py tests that rule); these tests check what happens once it has
    passed, so it is zero here."""
    if backend == "postgres":
        monkeypatch.setattr(blobs_module, "SHARED_GRACE_SECONDS", 0.0)


@pytest.fixture
def era() -> str:
    """Storage behaviour does not depend on the protocol era (test_tools covers both): one era keeps this fast."""
    return "auto"


@pytest.fixture
async def store(client: Client, app_runtime: tuple[MCPServer, Runtime]) -> ArtifactStore:
    """The ArtifactStore of the owning process (open while `client` is connected; the server opens it in the
    background, so wait for that)."""
    owner = app_runtime[1].store
    await owner.opened()
    assert owner.role == "owner" and owner.store is not None
    return owner.store


async def upload(client: Client, data: bytes, name: str = "f", **extra: object) -> dict:
    return await call(client, "upload_artifact", {"name": name, "data_base64": b64(data), **extra})


async def test_blob_is_content_addressed(client: Client, store: ArtifactStore) -> None:
    data = b"content addressed\n"
    art = await upload(client, data)
    assert art["sha256"] == hashlib.sha256(data).hexdigest()
    assert list(store.blobs.iter_keys()) == [key_of(data)]
    assert store.blobs.get(key_of(data)) == data
    # no temporary files are left behind
    assert store.blobs.fs.ls(f"{store.blobs.root}/tmp") == []
    # text and JSON content is kept in the catalog, not as blobs
    await call(client, "create_artifact", {"name": "t", "content": "inline"})
    assert list(store.blobs.iter_keys()) == [key_of(data)]


async def test_deleting_only_reference_removes_blob(client: Client, store: ArtifactStore) -> None:
    data = b"only one owner\n"
    art = await upload(client, data)
    assert store.blobs.exists(key_of(data))
    out = await call(client, "delete_artifact", {"artifact_id": art["artifact_id"]})
    assert out["blobs_removed"] == 1
    assert not store.blobs.exists(key_of(data))
    assert list(store.blobs.iter_keys()) == []


async def test_deleting_one_of_two_sharing_keeps_blob(client: Client, store: ArtifactStore) -> None:
    data = b"shared by two\n" * 100
    a = await upload(client, data, "a")
    b = await upload(client, data, "b")
    out = await call(client, "delete_artifact", {"artifact_id": a["artifact_id"]})
    assert out["blobs_removed"] == 0
    assert store.blobs.exists(key_of(data))
    (contents,) = (await client.read_resource(f"{b['uri']}/content")).contents
    assert contents.text == data.decode()
    out = await call(client, "delete_artifact", {"artifact_id": b["artifact_id"]})
    assert out["blobs_removed"] == 1
    assert not store.blobs.exists(key_of(data))


async def test_versions_share_and_release_blobs(client: Client, store: ArtifactStore) -> None:
    one, two = b"version one\n", b"version two\n"
    v1 = await upload(client, one)
    v2 = (await call(client, "update_artifact", {"artifact_id": v1["artifact_id"],
                                                 "data_base64": b64(two)}))["artifact"]
    assert set(store.blobs.iter_keys()) == {key_of(one), key_of(two)}
    # dropping only the old version frees only its bytes
    out = await call(client, "delete_artifact", {"artifact_id": v1["artifact_id"], "all_versions": False})
    assert out["blobs_removed"] == 1
    assert set(store.blobs.iter_keys()) == {key_of(two)}
    # a new version with the same bytes as the current one shares its blob
    v3 = (await call(client, "update_artifact", {"artifact_id": v2["artifact_id"],
                                                 "data_base64": b64(two)}))["artifact"]
    assert v3["sha256"] == v2["sha256"]
    out = await call(client, "delete_artifact", {"artifact_id": v3["artifact_id"], "all_versions": False})
    assert out["blobs_removed"] == 0
    assert store.blobs.exists(key_of(two))


# The owner also runs the collector once at start-up, on a worker thread, so these tests assert on
# what the blob store holds rather than on how many blobs one particular collector run removed.


async def test_collect_garbage_removes_orphans_only(client: Client, store: ArtifactStore) -> None:
    kept = b"referenced\n"
    await upload(client, kept)
    orphan = b"nobody points at me\n"
    store.blobs.fs.pipe_file(f"{store.blobs.root}/{key_of(orphan)}", orphan)
    assert store.collect_garbage() in (0, 1)
    assert not store.blobs.exists(key_of(orphan))
    assert list(store.blobs.iter_keys()) == [key_of(kept)]
    assert store.collect_garbage() == 0
    (contents,) = (await client.read_resource(f"{(await call(client, 'list_artifacts', {}))['artifacts'][0]['uri']}"
                                              "/content")).contents
    assert contents.text == kept.decode()


async def test_collect_garbage_spares_pinned_and_fresh_tmp(client: Client, store: ArtifactStore) -> None:
    await upload(client, b"something stored\n")
    in_flight = b"being written right now\n"
    with store.blobs.pinned(key_of(in_flight)):
        store.blobs.fs.pipe_file(f"{store.blobs.root}/{key_of(in_flight)}", in_flight)
        fresh_tmp = f"{store.blobs.root}/tmp/partial-upload"
        store.blobs.fs.pipe_file(fresh_tmp, b"half")
        assert store.collect_garbage() == 0
        assert store.blobs.exists(key_of(in_flight))
    assert store.blobs.fs.exists(fresh_tmp)  # younger than the grace period
    store.collect_garbage()
    assert not store.blobs.exists(key_of(in_flight))
    assert store.blobs.fs.exists(fresh_tmp)


async def test_sweep_expired(client: Client, store: ArtifactStore) -> None:
    doomed_bytes = b"expiring file\n"
    doomed = await upload(client, doomed_bytes, "doomed", ttl_seconds=1)
    plain = await call(client, "create_artifact", {"name": "plain", "content": "p", "ttl_seconds": 1})
    pinned = await call(client, "create_artifact", {"name": "pinned", "content": "p", "ttl_seconds": 1,
                                                    "is_pinned": True})
    forever = await call(client, "create_artifact", {"name": "forever", "content": "f"})
    # an artifact whose old version expires but whose latest has no TTL
    old = await call(client, "create_artifact", {"name": "versioned", "content": "old", "ttl_seconds": 1})
    new = (await call(client, "update_artifact", {"artifact_id": old["artifact_id"], "content": "new",
                                                  "clear_ttl": True}))["artifact"]
    assert new["expires_at"] is None
    assert store.sweep_expired() == []  # nothing has expired yet

    await anyio.sleep(1.1)
    # expired but not yet swept: hidden, still readable with include_expired, not via resources
    got = await call(client, "get_artifact", {"artifact_id": plain["artifact_id"], "include_expired": True})
    assert got["is_expired"] is True
    with pytest.raises(MCPError):
        await client.read_resource(f"{doomed['uri']}/content")

    events = store.sweep_expired()
    assert {e.root_artifact_id for e in events} == {doomed["artifact_id"], plain["artifact_id"],
                                                    old["artifact_id"]}
    assert all(e.kind == "deleted" for e in events)
    page = await call(client, "list_artifacts", {"include_expired": True, "latest_only": False})
    assert {a["artifact_id"] for a in page["artifacts"]} == {pinned["artifact_id"], forever["artifact_id"],
                                                             new["artifact_id"]}
    for gone in (doomed, plain, old):
        await call_error(client, "get_artifact", {"artifact_id": gone["artifact_id"], "include_expired": True})
    assert not store.blobs.exists(key_of(doomed_bytes))
    versions = await call(client, "list_artifact_versions", {"artifact_id": new["artifact_id"]})
    assert [(v["version"], v["is_latest"]) for v in versions["versions"]] == [(2, True)]
    assert (await call(client, "get_artifact", {"artifact_id": pinned["artifact_id"]}))["is_expired"] is False
    assert store.sweep_expired() == []


async def test_reopen_keeps_data_and_migrations(settings: Settings, backend: str) -> None:
    data = b"\x89PNG\r\n\x1a\n persisted bytes"
    app, _ = build_app(settings)
    async with Client(app) as client:
        text = await call(client, "create_artifact", {"name": "kept", "content": {"a": 1}, "tags": ["x"]})
        v2 = (await call(client, "update_artifact", {"artifact_id": text["artifact_id"],
                                                     "content": {"a": 2}}))["artifact"]
        file = await upload(client, data, "img")
        # Let the background index jobs finish, so that nothing changes between the two listings.
        with anyio.fail_after(20):
            while not all(a["is_indexed"] for a in (await call(client, "list_artifacts", {}))["artifacts"]):
                await anyio.sleep(0.05)
        first = await call(client, "list_artifacts", {"latest_only": False})

    catalog_path = settings.store_config().catalog_path
    migrations = PG_MIGRATIONS if backend == "postgres" else MIGRATIONS
    if backend == "duckdb":
        con = duckdb.connect(catalog_path, read_only=True)
        try:
            applied = con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
            assert applied == [(version,) for version, _, _ in MIGRATIONS]
        finally:
            con.close()

    app2, _ = build_app(settings)
    async with Client(app2, mode="legacy") as client:
        again = await call(client, "list_artifacts", {"latest_only": False})
        assert again == first
        got = await call(client, "get_artifact", {"artifact_id": v2["artifact_id"]})
        assert got["content"] == {"a": 2} and got["version"] == 2
        old = await call(client, "get_artifact", {"artifact_id": text["artifact_id"]})
        assert old["content"] == {"a": 1} and old["replaced_by_version"] == 2
        (contents,) = (await client.read_resource(f"{file['uri']}/content")).contents
        assert base64.b64decode(contents.blob) == data
        # cursors survive a restart (the signing secret is stored in the catalog)
        page = await call(client, "list_artifacts", {"limit": 1})
        assert [a["artifact_id"] for a in page["artifacts"]] == [file["artifact_id"]]
        cursor = page["next_cursor"]
    async with Client(build_app(settings)[0]) as client:
        nxt = await call(client, "list_artifacts", {"limit": 1, "cursor": cursor})
        assert [a["artifact_id"] for a in nxt["artifacts"]] == [v2["artifact_id"]]
        assert nxt["has_more"] is False

    catalog = PostgresRepositories(catalog_path) if backend == "postgres" else DuckDBRepositories(catalog_path)
    try:
        assert catalog.schema_version() == migrations[-1][0]
        rows = catalog.con.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert rows == [(version,) for version, _, _ in migrations]  # re-opening does not re-apply migrations
        assert catalog.artifacts.count() == 3
    finally:
        catalog.close()


async def test_concurrent_writes(client: Client, store: ArtifactStore) -> None:
    data = b"uploaded concurrently\n" * 50
    results: list[dict] = []

    async def one(i: int) -> None:
        if i % 2:
            results.append(await upload(client, data, f"u{i}"))
        else:
            results.append(await call(client, "create_artifact", {"name": f"c{i}", "content": f"body {i}"}))

    async with anyio.create_task_group() as tg:
        for i in range(16):
            tg.start_soon(one, i)
    ids = {r["artifact_id"] for r in results}
    assert len(ids) == 16
    page = await call(client, "list_artifacts", {"limit": 100})
    assert page["total"] == 16 and {a["artifact_id"] for a in page["artifacts"]} == ids
    assert list(store.blobs.iter_keys()) == [key_of(data)]


async def test_concurrent_updates_with_expected_version(client: Client) -> None:
    art = await call(client, "create_artifact", {"name": "race", "content": "v1"})
    outcomes: list[bool] = []

    async def attempt(i: int) -> None:
        result = await client.call_tool("update_artifact", {"artifact_id": art["artifact_id"], "content": f"w{i}",
                                                            "expected_version": 1})
        if result.is_error:
            assert "stale" in result.content[0].text
        outcomes.append(not result.is_error)

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(attempt, i)
    assert sorted(outcomes) == [False] * 7 + [True]
    versions = await call(client, "list_artifact_versions", {"artifact_id": art["artifact_id"]})
    assert versions["total"] == 2


class SlowDeleteFS(MemoryFileSystem):
    """An in-memory fsspec filesystem whose deletes take a while, as on an object store."""

    protocol = "slowrm"
    delay = 0.0

    @classmethod
    def _strip_protocol(cls, path: str) -> str:  # type: ignore[override]
        return super()._strip_protocol(str(path).removeprefix("slowrm://"))

    def rm_file(self, path: str) -> None:
        time.sleep(type(self).delay)
        super().rm_file(path)


fsspec.register_implementation("slowrm", SlowDeleteFS, clobber=True)


@pytest.fixture
def slow_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"blob_url": f"slowrm://blobs-{uuid.uuid4().hex}"})


async def test_delete_racing_identical_upload_keeps_blob(slow_settings: Settings) -> None:
    """Deleting the last artifact that references some bytes while the same bytes are being uploaded
    again must not leave the new artifact pointing at a removed blob."""
    data = b"bytes deleted and re-uploaded at once\n"
    app, _ = build_app(slow_settings)
    async with Client(app) as client:
        first = await upload(client, data, "first")
        second: dict = {}
        SlowDeleteFS.delay = 0.3
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, client, "delete_artifact", {"artifact_id": first["artifact_id"]})
                await anyio.sleep(0.1)  # the delete is now removing the blob
                second = await upload(client, data, "second")
        finally:
            SlowDeleteFS.delay = 0.0
        (contents,) = (await client.read_resource(f"{second['uri']}/content")).contents
        assert contents.text == data.decode()
