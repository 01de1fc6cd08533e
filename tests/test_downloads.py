"""Download links: the tool, the signed `/download/{token}` route over real HTTP (ranges, expiry, tampering,
revocation, deletion, tenant isolation), file:// links on stdio, native presigned URLs, and streamed uploads
(`StoreClient.create_from_stream` / `update_from_stream`) from another process than the store's owner."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlparse

import anyio
import fsspec
import httpx
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from mcp import Client

from artifact_mcp.server.app import build_app
from artifact_mcp.server.settings import Settings
from artifact_mcp.storage.errors import NotFound, TooLarge
from artifact_mcp.storage.index.pipeline import IndexConfig
from artifact_mcp.storage.models import FilePatch, NewFileArtifact, Scope
from artifact_mcp.storage.ownership.client import StoreClient, StoreConfig
from tests.conftest import TEST_EMBEDDING, call, call_error
from tests.support_http import Server, bearer, cli, create_token, mcp_http, serve_http
from tests.test_stdio import TIMEOUT

pytestmark = pytest.mark.anyio

ACME = Scope(org_id="acme", workspace_id="research", namespace_id="main")
DENIED = {"detail": "invalid or expired download link", "error": "forbidden"}
# Not a multiple of the 1 MiB read size, so ranges and the last piece cross chunk boundaries.
PAYLOAD = os.urandom(2 * 1024 * 1024 + 12_345)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def token_id(token: str) -> str:
    return token.removeprefix("amcp_").split("_", 1)[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("downloads") / "data"
    data.mkdir()
    tokens = {
        "alice": create_token(data, "alice", ["acme/*/*"], ["write"], "acme/research/main"),
        "carol": create_token(data, "carol", ["acme/*/*"], ["write"], "acme/research/main"),  # revoked below
        "bob": create_token(data, "bob", ["globex/*/*"], ["write"], "globex/ops/main"),
    }
    with serve_http(data, "--embedding-model", TEST_EMBEDDING) as port:
        yield Server(data, port, tokens)


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client without credentials: download links carry their own."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        yield client


@pytest.fixture(scope="module")
async def alice(server: Server) -> AsyncIterator[Client]:
    async with mcp_http(server.port, bearer(server.tokens["alice"])) as client:
        yield client


@pytest.fixture(scope="module")
async def uploaded(alice: Client) -> dict:
    return await call(alice, "upload_artifact", {"name": "data.bin", "file_name": "résumé data.bin",
                                                 "data_base64": base64.b64encode(PAYLOAD).decode()})


@pytest.fixture(scope="module")
async def forwarder(server: Server) -> AsyncIterator[StoreClient]:
    """A second process's view of the server's store: this test process forwards to the server, which owns it."""
    cfg = StoreConfig(catalog_path=str(server.data_dir / "catalog.duckdb"),
                      blob_url=(server.data_dir / "blobs").resolve().as_uri(),
                      index=IndexConfig(embedding_model=TEST_EMBEDDING))
    async with StoreClient(cfg) as client:
        assert client.role == "forwarder"
        yield client


async def link_for(client: Client, artifact_id: str, **extra: object) -> dict:
    return await call(client, "get_artifact_download_url", {"artifact_id": artifact_id, **extra})


async def test_link_serves_the_bytes(server: Server, alice: Client, uploaded: dict,
                                     http: httpx.AsyncClient) -> None:
    with anyio.fail_after(TIMEOUT):
        before = datetime.now(UTC)
        link = await link_for(alice, uploaded["artifact_id"])
        assert set(link) >= {"artifact_id", "download_url", "expires_in", "file_name", "content_type",
                             "file_size_bytes"}
        assert link["artifact_id"] == uploaded["artifact_id"]
        assert link["download_url"].startswith(f"{server.url}/download/")
        assert link["expires_in"] == 3600 and link["file_size_bytes"] == len(PAYLOAD)
        assert link["file_name"] == "résumé data.bin" and link["content_type"] == "application/octet-stream"
        expires_at = datetime.fromisoformat(link["expires_at"])
        assert before + timedelta(seconds=3598) <= expires_at <= datetime.now(UTC) + timedelta(seconds=3601)

        response = await http.get(link["download_url"])  # no Authorization: the link is the credential
        assert response.status_code == 200
        assert response.content == PAYLOAD
        assert response.headers["content-length"] == str(len(PAYLOAD))
        assert response.headers["content-type"] == "application/octet-stream"
        assert response.headers["accept-ranges"] == "bytes"
        assert response.headers["content-disposition"] == (
            "attachment; filename=\"r_sum_ data.bin\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20data.bin")
        assert response.headers["etag"] == f'"{hashlib.sha256(PAYLOAD).hexdigest()}"'

        head = await http.head(link["download_url"])
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(PAYLOAD))

        # Short links are fine too.
        short = await link_for(alice, uploaded["artifact_id"], expires_in=60)
        assert short["expires_in"] == 60 and (await http.get(short["download_url"])).content == PAYLOAD


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=10-19", 10, 20),
    ("bytes=1048570-1048600", 1048570, 1048601),  # across the 1 MiB read boundary
    (f"bytes={len(PAYLOAD) - 5}-", len(PAYLOAD) - 5, len(PAYLOAD)),
    ("bytes=-7", len(PAYLOAD) - 7, len(PAYLOAD)),
    (f"bytes=100-{len(PAYLOAD) * 2}", 100, len(PAYLOAD)),  # clamped to the end
    ("bytes=0-0", 0, 1),
])
async def test_range_requests(alice: Client, uploaded: dict, http: httpx.AsyncClient, header: str, start: int,
                              end: int) -> None:
    with anyio.fail_after(TIMEOUT):
        url = (await link_for(alice, uploaded["artifact_id"]))["download_url"]
        response = await http.get(url, headers={"Range": header})
        assert response.status_code == 206
        assert response.content == PAYLOAD[start:end]
        assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(PAYLOAD)}"
        assert response.headers["content-length"] == str(end - start)


async def test_unsatisfiable_and_ignored_ranges(alice: Client, uploaded: dict, http: httpx.AsyncClient) -> None:
    with anyio.fail_after(TIMEOUT):
        url = (await link_for(alice, uploaded["artifact_id"]))["download_url"]
        for header in (f"bytes={len(PAYLOAD)}-", f"bytes={len(PAYLOAD) + 10}-{len(PAYLOAD) + 20}", "bytes=-0"):
            response = await http.get(url, headers={"Range": header})
            assert response.status_code == 416, header
            assert response.headers["content-range"] == f"bytes */{len(PAYLOAD)}"
        # Several ranges, another unit, nonsense or a stale If-Range: the whole file (RFC 9110 allows ignoring).
        for headers in ({"Range": "bytes=0-1,5-6"}, {"Range": "items=0-1"}, {"Range": "bytes=9-3"},
                        {"Range": "bytes=0-9", "If-Range": '"some-other-version"'}):
            response = await http.get(url, headers=headers)
            assert response.status_code == 200 and response.content == PAYLOAD, headers
        etag = (await http.head(url)).headers["etag"]
        response = await http.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
        assert response.status_code == 206 and response.content == PAYLOAD[:10]


async def test_text_and_json_content_download(alice: Client, http: httpx.AsyncClient) -> None:
    with anyio.fail_after(TIMEOUT):
        text = await call(alice, "create_artifact", {"name": "Notes: Q3/Q4", "content": "héllo wörld\n"})
        link = await link_for(alice, text["artifact_id"])
        assert link["file_name"] == "Notes: Q3_Q4.txt" and link["file_size_bytes"] == len("héllo wörld\n".encode())
        response = await http.get(link["download_url"])
        assert response.status_code == 200 and response.content == "héllo wörld\n".encode()
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        ranged = await http.get(link["download_url"], headers={"Range": "bytes=1-2"})
        assert ranged.status_code == 206 and ranged.content == "é".encode()

        doc = {"rows": [1, 2], "ok": True}
        json_art = await call(alice, "create_artifact", {"name": "result", "content": doc})
        link = await link_for(alice, json_art["artifact_id"])
        assert link["file_name"] == "result.json" and link["content_type"] == "application/json"
        assert (await http.get(link["download_url"])).json() == doc


async def test_expired_link_is_refused(server: Server, uploaded: dict, forwarder: StoreClient,
                                       http: httpx.AsyncClient) -> None:
    with anyio.fail_after(TIMEOUT):
        alice_id = token_id(server.tokens["alice"])
        now = datetime.now(UTC)
        expired = await forwarder.download_link(ACME, uploaded["artifact_id"], 60, alice_id,
                                                issued_at=now - timedelta(seconds=61))
        response = await http.get(f"{server.url}/download/{expired.token}")
        assert response.status_code == 403 and response.json() == DENIED
        # The same request minted now works: only the clock made the difference.
        fresh = await forwarder.download_link(ACME, uploaded["artifact_id"], 60, alice_id)
        assert (await http.get(f"{server.url}/download/{fresh.token}")).content == PAYLOAD
        # A clock in the future is not honoured: links can be shortened, never extended.
        future = await forwarder.download_link(ACME, uploaded["artifact_id"], 60, alice_id,
                                               issued_at=now + timedelta(days=365))
        assert future.expires_at <= datetime.now(UTC) + timedelta(seconds=61)


async def test_download_target_for_authenticated_routes(uploaded: dict, forwarder: StoreClient) -> None:
    """What the REST mirror's download route streams: the same target, found by scope and id instead of a link."""
    with anyio.fail_after(TIMEOUT):
        target = await forwarder.download_target(ACME, uploaded["artifact_id"])
        assert target.size_bytes == len(PAYLOAD) and target.sha256 == hashlib.sha256(PAYLOAD).hexdigest()
        assert target.blob_key is not None and target.token_id is None and target.scope == ACME
        with pytest.raises(NotFound, match="no artifact"):
            await forwarder.download_target(Scope(org_id="globex", workspace_id="ops", namespace_id="main"),
                                            uploaded["artifact_id"])


async def test_tampered_links_are_refused(server: Server, alice: Client, uploaded: dict,
                                          http: httpx.AsyncClient) -> None:
    with anyio.fail_after(TIMEOUT):
        url = (await link_for(alice, uploaded["artifact_id"]))["download_url"]
        token = url.rsplit("/", 1)[1]
        payload, mac = token.split(".")

        def flip(text: str, i: int) -> str:
            return text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]

        other = await call(alice, "create_artifact", {"name": "other", "content": "x"})
        other_token = (await link_for(alice, other["artifact_id"]))["download_url"].rsplit("/", 1)[1]
        forged = [
            f"{flip(payload, 5)}.{mac}", f"{payload}.{flip(mac, 0)}", payload, f"{payload}.", token[:-1],
            f"{other_token.split('.')[0]}.{mac}",  # another artifact's claims with this MAC
            "not-a-token", "a.b.c", "x" * 2000,
        ]
        for bad in forged:
            response = await http.get(f"{server.url}/download/{bad}")
            assert response.status_code == 403, bad
            assert response.json() == DENIED
        assert (await http.get(url)).status_code == 200


async def test_revoked_token_kills_its_links(server: Server, http: httpx.AsyncClient) -> None:
    with anyio.fail_after(TIMEOUT):
        async with mcp_http(server.port, bearer(server.tokens["carol"])) as carol:
            art = await call(carol, "create_artifact", {"name": "carol's", "content": "for carol only"})
            url = (await link_for(carol, art["artifact_id"]))["download_url"]
        assert (await http.get(url)).status_code == 200
        done = cli(server.data_dir, "token", "revoke", token_id(server.tokens["carol"]))
        assert done.returncode == 0, done.stderr
        response = await http.get(url)
        assert response.status_code == 403 and response.json() == DENIED
        assert (await http.head(url)).status_code == 403


async def test_deleted_version_link_is_refused(alice: Client, http: httpx.AsyncClient) -> None:
    with anyio.fail_after(TIMEOUT):
        v1 = await call(alice, "upload_artifact", {"name": "versioned",
                                                   "data_base64": base64.b64encode(b"one").decode()})
        v2 = (await call(alice, "update_artifact", {"artifact_id": v1["artifact_id"],
                                                    "data_base64": base64.b64encode(b"two").decode()}))["artifact"]
        url1 = (await link_for(alice, v1["artifact_id"]))["download_url"]
        url2 = (await link_for(alice, v2["artifact_id"]))["download_url"]
        assert (await http.get(url1)).content == b"one" and (await http.get(url2)).content == b"two"
        await call(alice, "delete_artifact", {"artifact_id": v1["artifact_id"], "all_versions": False})
        response = await http.get(url1)
        assert response.status_code == 403 and response.json() == DENIED
        assert (await http.get(url2)).content == b"two"
        await call(alice, "delete_artifact", {"artifact_id": v2["artifact_id"]})
        assert (await http.get(url2)).status_code == 403


async def test_other_tenant_gets_no_link(server: Server, uploaded: dict) -> None:
    with anyio.fail_after(TIMEOUT):
        async with mcp_http(server.port, bearer(server.tokens["bob"])) as bob:
            error = await call_error(bob, "get_artifact_download_url", {
                "artifact_id": uploaded["artifact_id"], "org_id": "acme", "workspace_id": "research",
                "namespace_id": "main"})
            assert "forbidden" in error and "acme/research/main" in error
            # In its own scope the artifact simply does not exist.
            error = await call_error(bob, "get_artifact_download_url", {"artifact_id": uploaded["artifact_id"]})
            assert "no artifact" in error


async def test_expires_in_out_of_range_is_a_tool_error(alice: Client, uploaded: dict) -> None:
    with anyio.fail_after(TIMEOUT):
        for bad in (59, 0, -5, 86_401):
            error = await call_error(alice, "get_artifact_download_url",
                                     {"artifact_id": uploaded["artifact_id"], "expires_in": bad})
            assert "expires_in" in error
        assert (await link_for(alice, uploaded["artifact_id"], expires_in=86_400))["expires_in"] == 86_400


async def test_stream_upload_from_a_forwarding_process(server: Server, alice: Client, forwarder: StoreClient,
                                                       http: httpx.AsyncClient, tmp_path: Path) -> None:
    with anyio.fail_after(TIMEOUT):
        source = tmp_path / "big.log"
        lines = b"".join(f"line {i} of a log that is streamed\n".encode() for i in range(60_000))
        source.write_bytes(lines)
        with source.open("rb") as fh:
            art = await forwarder.create_from_stream(ACME, NewFileArtifact(name="streamed", file_name="big.log",
                                                                           tags=["s"]), fh)
        assert art.size_bytes == len(lines) and art.sha256 == hashlib.sha256(lines).hexdigest()
        assert art.mime_type == "text/plain" and art.tags == ["s"] and art.file_name == "big.log"
        got = await call(alice, "get_artifact", {"artifact_id": art.artifact_id, "max_chars": 40})
        assert got["content_text"] == lines.decode()[:40]
        link = await link_for(alice, art.artifact_id)
        assert (await http.get(link["download_url"])).content == lines
        # No temporary file is left behind: the owner moved it to its content address.
        assert os.listdir(server.data_dir / "blobs" / "tmp") == []

        new_bytes = os.urandom(300_000)
        result = await forwarder.update_from_stream(ACME, art.artifact_id, FilePatch(expected_version=1,
                                                                                     file_name="big.bin"),
                                                    io.BytesIO(new_bytes))
        assert result.new_version and result.artifact.version == 2
        assert result.artifact.mime_type == "application/octet-stream" and result.artifact.content_text is None
        link = await link_for(alice, result.artifact.artifact_id)
        assert link["file_name"] == "big.bin"
        assert (await http.get(link["download_url"])).content == new_bytes
        # Bad input changes nothing: a stale expected_version, and the staged bytes are gone too.
        with pytest.raises(Exception, match="expected_version 1 is stale"):
            await forwarder.update_from_stream(ACME, art.artifact_id, FilePatch(expected_version=1),
                                               io.BytesIO(b"lost update"))
        versions = await call(alice, "list_artifact_versions", {"artifact_id": art.artifact_id})
        assert versions["total"] == 2
        assert os.listdir(server.data_dir / "blobs" / "tmp") == []
        blob_dir = server.data_dir / "blobs" / "sha256"
        digest = hashlib.sha256(b"lost update").hexdigest()
        assert not (blob_dir / digest[:2] / digest[2:4] / digest).exists()


async def test_any_process_of_the_store_serves_the_link(server: Server, alice: Client, uploaded: dict,
                                                        http: httpx.AsyncClient) -> None:
    """A second server on the same data directory forwards to the first; links made by one work on the other."""
    link = await link_for(alice, uploaded["artifact_id"])
    token = link["download_url"].rsplit("/", 1)[1]
    with serve_http(server.data_dir, "--embedding-model", TEST_EMBEDDING) as port:
        with anyio.fail_after(TIMEOUT):
            assert (await http.get(f"http://127.0.0.1:{port}/readyz")).json()["owner"] is False
            response = await http.get(f"http://127.0.0.1:{port}/download/{token}", headers={"Range": "bytes=-100"})
            assert response.status_code == 206 and response.content == PAYLOAD[-100:]
            assert (await http.get(f"http://127.0.0.1:{port}/download/{token}")).content == PAYLOAD
            bad = await http.get(f"http://127.0.0.1:{port}/download/{token[:-2]}")
            assert bad.status_code == 403 and bad.json() == DENIED


async def test_download_links_stay_out_of_the_logs(server: Server, alice: Client, uploaded: dict,
                                                   http: httpx.AsyncClient) -> None:
    with anyio.fail_after(TIMEOUT):
        url = (await link_for(alice, uploaded["artifact_id"]))["download_url"]
        assert (await http.head(url)).status_code == 200
        token = url.rsplit("/", 1)[1]
        await anyio.sleep(0.2)
        log = server.log
        assert "/download/<link>" in log
        assert token not in log


# --- in-process servers (stdio transport): file:// links, no link, native presigned URLs -------------------------


async def test_stdio_returns_a_local_file_uri(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", embedding_model=TEST_EMBEDDING, _env_file=None)
    app, _ = build_app(settings)
    async with Client(app) as client:
        data = os.urandom(5000)
        art = await call(client, "upload_artifact", {"name": "local", "data_base64": base64.b64encode(data).decode()})
        link = await link_for(client, art["artifact_id"])
        url = urlparse(link["download_url"])
        assert url.scheme == "file"
        assert Path(unquote(url.path)).read_bytes() == data
        assert link["expires_at"] is None and "does not expire" in link["note"]
        text = await call(client, "create_artifact", {"name": "t", "content": "inline text"})
        error = await call_error(client, "get_artifact_download_url", {"artifact_id": text["artifact_id"]})
        assert "no download link in stdio mode" in error and "get_artifact" in error


async def test_stdio_with_memory_blobs_says_no_link(settings: Settings) -> None:
    app, _ = build_app(settings)  # the conftest settings keep blobs in memory://
    async with Client(app) as client:
        art = await call(client, "upload_artifact", {"name": "m", "data_base64": base64.b64encode(b"mem").decode()})
        error = await call_error(client, "get_artifact_download_url", {"artifact_id": art["artifact_id"]})
        assert "no download link can be made in stdio mode" in error and "'memory://'" in error
        assert f"artifact://{art['artifact_id']}/content" in error


class SigningMemoryFileSystem(MemoryFileSystem):
    """Stands in for s3fs/gcsfs, whose `sign` returns a presigned URL (their protocols need a cloud)."""

    protocol = ("signmem",)

    def sign(self, path: str, expiration: int = 100, **kwargs: object) -> str:
        return f"https://bucket.example/{path.lstrip('/')}?X-Expires={expiration}"


async def test_native_presigned_url_when_enabled(tmp_path: Path) -> None:
    fsspec.register_implementation("signmem", SigningMemoryFileSystem, clobber=True)
    root = f"signmem://blobs-{uuid.uuid4().hex}"
    for native in (True, False):
        settings = Settings(data_dir=tmp_path / f"data-{native}", blob_url=root, embedding_model=TEST_EMBEDDING,
                            native_download_links=native, _env_file=None)
        app, _ = build_app(settings)
        async with Client(app) as client:
            art = await call(client, "upload_artifact", {"name": "s", "data_base64": base64.b64encode(b"s3").decode()})
            if native:
                link = await link_for(client, art["artifact_id"], expires_in=120)
                assert link["download_url"].startswith("https://bucket.example/")
                assert link["download_url"].endswith(f"{art['sha256']}?X-Expires=120")
                assert "cannot be revoked" in link["note"]
            else:
                error = await call_error(client, "get_artifact_download_url", {"artifact_id": art["artifact_id"]})
                assert "no download link can be made in stdio mode" in error


async def test_stream_size_limit_and_collector_safety(tmp_path: Path) -> None:
    """A stream over the limit leaves nothing; staged bytes survive a collection until their row commits."""
    settings = Settings(data_dir=tmp_path / "data", embedding_model=TEST_EMBEDDING, max_upload_bytes=100_000,
                        _env_file=None)
    app, runtime = build_app(settings)
    async with Client(app) as client:
        store = runtime.store
        await store.opened()  # the server opens its store in the background
        assert store.store is not None
        with pytest.raises(TooLarge, match="over the 100000-byte limit"):
            await store.create_from_stream(ACME, NewFileArtifact(name="big"), io.BytesIO(b"x" * 100_001))
        assert os.listdir(tmp_path / "data" / "blobs" / "tmp") == []
        assert (await call(client, "list_artifacts", {"org_id": "acme", "workspace_id": "research",
                                                      "namespace_id": "main"}))["total"] == 0

        blobs = store.blobs
        staged = await anyio.to_thread.run_sync(blobs.stage_stream, io.BytesIO(b"staged, not yet adopted"))
        store.store.collect_garbage()  # the owner's housekeeping, between staging and adoption
        art, _ = await anyio.to_thread.run_sync(
            lambda: store.store.create_from_blob(ACME, NewFileArtifact(name="adopted"), staged))
        assert art.size_bytes == len(b"staged, not yet adopted")
        assert blobs.get(f"sha256/{art.sha256[:2]}/{art.sha256[2:4]}/{art.sha256}") == b"staged, not yet adopted"
        # Adopting the same staged upload again (a retried call) finds the blob in place.
        again, _ = await anyio.to_thread.run_sync(
            lambda: store.store.create_from_blob(ACME, NewFileArtifact(name="adopted"), staged, art.artifact_id))
        assert again.artifact_id == art.artifact_id
