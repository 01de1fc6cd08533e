"""Blobs on S3 (moto's standalone server on 127.0.0.1) under replicas on one PostgreSQL catalog: a file uploaded
through one replica downloads byte-identical through another, streamed both ways in constant memory; native
presigned links point at S3 itself; a replica's delete never takes a blob another replica just wrote again."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import httpx
import pytest

from artifact_mcp.storage.blobs import BlobStore, blob_key
from tests.conftest import TEST_EMBEDDING, server_env
from tests.support_http import serve_http
from tests.support_s3 import S3Server, s3_server

NS = "/v1/orgs/default/workspaces/default/namespaces/default"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


def test_files_on_s3_cross_replicas_byte_identical(postgres: Any, s3: S3Server, tmp_path: Path) -> None:
    url = postgres.new_database()
    bucket = s3.new_bucket()
    env = server_env(**s3.env())
    args = ("--catalog", url, "--blob-url", f"s3://{bucket}/artifacts", "--auth", "none", "--embedding-model",
            TEST_EMBEDDING)
    data = os.urandom(6 * 1024 * 1024) + b"tail"  # several stream pieces
    with serve_http(tmp_path / "one", *args, env=env) as p1, \
            serve_http(tmp_path / "two", *args, env={**env, "ARTIFACT_MCP_NATIVE_DOWNLOAD_LINKS": "true"}) as p2, \
            httpx.Client(timeout=120) as c:
        up = c.post(f"http://127.0.0.1:{p1}{NS}/artifacts/upload", data={"name": "blob.bin"},
                    files={"file": ("blob.bin", data, "application/octet-stream")})
        assert up.status_code == 201, up.text
        aid = up.json()["artifact_id"]
        down = c.get(f"http://127.0.0.1:{p2}{NS}/artifacts/{aid}/download", params={"expires_in": 120})
        assert down.status_code == 200, down.text
        link = down.json()["download_url"]
        assert link.startswith(s3.endpoint), link  # presigned by S3, not a link to the replica
        fetched = c.get(link)
        assert fetched.status_code == 200 and hashlib.sha256(fetched.content).digest() == hashlib.sha256(data).digest()
        # The object is where the blob store puts it: content-addressed under the prefix.
        key = blob_key(hashlib.sha256(data).hexdigest())
        fs = fsspec.filesystem("s3", endpoint_url=s3.endpoint, key="testing", secret="testing")
        assert fs.info(f"{bucket}/artifacts/{key}")["size"] == len(data)
        assert fs.find(f"{bucket}/artifacts/tmp") == []  # nothing left staged


def test_a_shared_blob_store_never_deletes_what_a_replica_just_wrote(s3: S3Server,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    url = f"s3://{s3.new_bucket()}/blobs"
    one = BlobStore(url, max_bytes=1 << 20, shared=True)
    two = BlobStore(url, max_bytes=1 << 20, shared=True)
    with one.staged(b"same bytes") as (key, _):
        pass
    # Replica two reuses the bytes (its row not yet committed) while replica one finds them unreferenced.
    with two.staged(b"same bytes") as (again, _):
        assert again == key
        assert one.delete_unreferenced([key], still_referenced=[]) == 0
    assert two.get(key) == b"same bytes"
    # An embedded (unshared) store deletes at once: the grace is what sharing costs.
    solo = BlobStore(url, max_bytes=1 << 20)
    assert solo.delete_unreferenced([key], still_referenced=[]) == 1
