"""Export and restore as use cases, on in-process stores: a version deleted mid-export is left out (and the
archive still restores), and an archive restored in any order re-links each artifact's versions."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest
from mcp import Client
from mcp.server import MCPServer

from artifact_mcp.server.runtime import Runtime
from artifact_mcp.server.settings import Settings
from artifact_mcp.storage.access import Access, local_principal
from artifact_mcp.storage.errors import Conflict
from artifact_mcp.storage.models import QueryRequest
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.usecases.archive import export_archive, restore_archive
from artifact_mcp.storage.usecases.steps import Step
from tests.conftest import TEST_EMBEDDING, call

pytestmark = pytest.mark.anyio


@pytest.fixture
def era() -> str:
    return "auto"


def other_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "other", blob_url=f"memory://blobs-{uuid.uuid4().hex}",
                    embedding_model=TEST_EMBEDDING, memory_limit="512MB", _env_file=None)


def access_of(settings: Settings) -> Access:
    return Access(scope=settings.default_scope, principal=local_principal(settings.default_scope))


async def test_version_deleted_mid_export_is_left_out(client: Client, app_runtime: tuple[MCPServer, Runtime],
                                                      tmp_path: Path, backend: str) -> None:
    runtime = app_runtime[1]
    kept = [await call(client, "create_artifact", {"name": f"kept {i}", "content": f"text {i}"}) for i in range(3)]
    doomed = await call(client, "upload_artifact", {"name": "doomed.bin", "data_base64": "AAECAwQ="})
    deleted = False

    async def delete_on_first_step(step: Step) -> None:
        nonlocal deleted
        if not deleted:
            deleted = True
            await call(client, "delete_artifact", {"artifact_id": doomed["artifact_id"]})

    report = await export_archive(runtime.store, access_of(runtime.settings), str(tmp_path / "cut"),
                                  delete_on_first_step)
    lines = [json.loads(x) for x in (tmp_path / "cut" / "manifest.jsonl").read_text().splitlines()]
    if backend == "postgres":
        # A blob store shared by replicas keeps a deleted blob for its grace period (blobs.SHARED_GRACE_SECONDS),
        # so the version is exported as it was at the cut, bytes and all: consistent too.
        assert (report.versions, report.vanished, report.blobs) == (4, 0, 1)
        assert [v["artifact_id"] for v in lines] == [k["artifact_id"] for k in [*kept, doomed]]
    else:
        assert (report.versions, report.vanished, report.blobs) == (3, 1, 0)
        assert [v["artifact_id"] for v in lines] == [k["artifact_id"] for k in kept]
    assert not (tmp_path / "cut.part").exists()

    target = other_settings(tmp_path)
    async with StoreClient(target.store_config()) as store:
        restored = await restore_archive(store, access_of(target), str(tmp_path / "cut"))
        assert (restored.restored, restored.present) == (len(lines), 0)


async def test_restore_in_any_order_relinks_versions(client: Client, app_runtime: tuple[MCPServer, Runtime],
                                                     tmp_path: Path) -> None:
    runtime = app_runtime[1]
    first = await call(client, "create_artifact", {"name": "doc", "content": "one", "tags": ["t"]})
    second = (await call(client, "update_artifact", {"artifact_id": first["artifact_id"], "content": "two"}))
    third = (await call(client, "update_artifact", {"artifact_id": first["artifact_id"], "content": "three"}))
    await export_archive(runtime.store, access_of(runtime.settings), str(tmp_path / "a"))
    # Reverse the manifest and re-seal the header: the newest version arrives first.
    manifest = tmp_path / "a" / "manifest.jsonl"
    lines = manifest.read_bytes().splitlines(keepends=True)[::-1]
    manifest.write_bytes(b"".join(lines))
    header = json.loads((tmp_path / "a" / "archive.json").read_text())
    header["manifest_sha256"] = hashlib.sha256(b"".join(lines)).hexdigest()
    (tmp_path / "a" / "archive.json").write_text(json.dumps(header))

    target = other_settings(tmp_path)
    async with StoreClient(target.store_config()) as store:
        done = await restore_archive(store, access_of(target), str(tmp_path / "a"))
        assert done.restored == 3
        versions = await store.versions(target.default_scope, first["artifact_id"])
        assert [(v.artifact_id, v.version, v.is_latest, v.replaced_by_version) for v in versions] == [
            (first["artifact_id"], 1, False, 2), (second["artifact"]["artifact_id"], 2, False, 3),
            (third["artifact"]["artifact_id"], 3, True, None)]
        assert all(v.tags == ["t"] for v in versions)
        latest = await store.wait_indexed(target.default_scope, third["artifact"]["artifact_id"], 30.0, None)
        assert latest.is_indexed
        assert (await store.get(target.default_scope, latest.artifact_id)).content_text == "three"
        hits = await store.query(target.default_scope, QueryRequest(query="three", mode="keyword"))
        assert [h.artifact.artifact_id for h in hits.results] == [latest.artifact_id]


async def test_restore_refuses_an_id_taken_by_another_version(client: Client, app_runtime: tuple[MCPServer, Runtime],
                                                              tmp_path: Path) -> None:
    runtime = app_runtime[1]
    for i in range(6):
        await call(client, "create_artifact", {"name": f"n{i}", "content": f"text {i}"})
    await export_archive(runtime.store, access_of(runtime.settings), str(tmp_path / "a"))
    # The same ids, but one claims to be version 2 of its artifact: not what the store holds.
    manifest = tmp_path / "a" / "manifest.jsonl"
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    lines[3]["version"] = 2
    body = "".join(json.dumps(x) + "\n" for x in lines).encode()
    manifest.write_bytes(body)
    header = json.loads((tmp_path / "a" / "archive.json").read_text())
    header["manifest_sha256"] = hashlib.sha256(body).hexdigest()
    (tmp_path / "a" / "archive.json").write_text(json.dumps(header))
    with pytest.raises(Conflict, match="already taken"):
        await restore_archive(runtime.store, access_of(runtime.settings), str(tmp_path / "a"))
    # A new id for a version number its artifact already has.
    lines[3]["version"] = 1
    lines[3]["artifact_id"] = "art_" + "f" * 32
    body = "".join(json.dumps(x) + "\n" for x in lines).encode()
    manifest.write_bytes(body)
    header["manifest_sha256"] = hashlib.sha256(body).hexdigest()
    (tmp_path / "a" / "archive.json").write_text(json.dumps(header))
    with pytest.raises(Conflict, match="already has a version 1"):
        await restore_archive(runtime.store, access_of(runtime.settings), str(tmp_path / "a"))
    page = await call(client, "list_artifacts", {"latest_only": False})
    assert page["total"] == 6
