"""Replicas on one PostgreSQL catalog: separate server processes, each with its own search cache, sharing only
the database and a blob store. A write on one is read and found by search on the others; one idempotency key over
all of them makes one document; a job a killed replica held is finished by another."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.client.subscriptions import ResourceUpdated

from tests.conftest import TEST_EMBEDDING
from tests.support_http import mcp_http, serve_http

NS = "/v1/orgs/default/workspaces/default/namespaces/default"


@contextmanager
def replicas(postgres: Any, tmp_path: Path, n: int) -> Iterator[list[httpx.Client]]:
    url = postgres.new_database()
    blobs = (tmp_path / "blobs").resolve().as_uri()
    with ExitStack() as stack:
        ports = [stack.enter_context(serve_http(tmp_path / f"replica{i}", "--catalog", url, "--blob-url", blobs,
                                                "--auth", "none", "--embedding-model", TEST_EMBEDDING))
                 for i in range(n)]
        clients = [stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{p}", timeout=30)) for p in ports]
        yield clients


def _until(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_a_write_on_one_replica_is_read_and_found_on_the_others(postgres: Any, tmp_path: Path) -> None:
    with replicas(postgres, tmp_path, 3) as (one, two, three):
        made = one.post(f"{NS}/artifacts", json={"name": "capybara notes", "content": "the capybara is the largest "
                                                 "living rodent", "artifact_type": "notes"})
        assert made.status_code == 201, made.text
        aid = made.json()["artifact_id"]
        got = two.get(f"{NS}/artifacts/{aid}")
        assert got.status_code == 200 and got.json()["name"] == "capybara notes"
        # Indexed by whichever replica claimed the job; found by search on the third.
        _until(lambda: two.get(f"{NS}/artifacts/{aid}").json()["is_indexed"])

        def found() -> bool:
            r = three.post(f"{NS}/artifacts/query", json={"query": "largest rodent", "top_k": 3})
            assert r.status_code == 200, r.text
            return [x["artifact"]["artifact_id"] for x in r.json()["results"]] == [aid]

        _until(found, 5)
        # A second write, after replica three's cache is loaded: it follows the change feed, not a reload.
        later = two.post(f"{NS}/artifacts", json={"name": "okapi", "content": "the okapi is a forest giraffe"})
        bid = later.json()["artifact_id"]
        _until(lambda: one.get(f"{NS}/artifacts/{bid}").json()["is_indexed"])
        _until(lambda: [x["artifact"]["artifact_id"] for x in three.post(
            f"{NS}/artifacts/query", json={"query": "forest giraffe", "top_k": 3}).json()["results"]] == [bid], 5)
        # A delete anywhere is gone everywhere.
        assert one.delete(f"{NS}/artifacts/{bid}").status_code == 200
        assert three.get(f"{NS}/artifacts/{bid}").status_code == 404
        assert three.post(f"{NS}/artifacts/query", json={"query": "forest giraffe"}).json()["results"] == []
    # Replica three kept its cache current from the feed: it never had to reload it for a stale read.
    log = (tmp_path / "replica2-stderr.log").read_text()
    assert "search cache was stale" not in log, log[-2000:]


@pytest.mark.parametrize("n", [3])
def test_one_idempotency_key_over_all_replicas_makes_one_document(postgres: Any, tmp_path: Path, n: int) -> None:
    with replicas(postgres, tmp_path, n) as clients:
        note = clients[0].post(f"{NS}/artifacts", json={"name": "n", "content": "meeting notes", "thread_id": "t1"})
        assert note.status_code == 201
        import concurrent.futures

        def generate(i: int) -> str:
            r = clients[i % n].post("/v1/spaces/default/artifacts/generate",
                                    headers={"Idempotency-Key": "one-key"},
                                    json={"thread_id": "t1", "document_type": "summary", "format": "markdown"})
            assert r.status_code in (200, 201), r.text
            return str(r.json()["id"])

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            ids = set(pool.map(generate, range(20)))
        assert len(ids) == 1
        listed = clients[1].get(f"{NS}/artifacts", params={"artifact_types": "summary"}).json()
        assert listed["total"] == 1


@pytest.mark.anyio
async def test_a_subscriber_on_one_replica_hears_of_a_write_on_another(postgres: Any, tmp_path: Path) -> None:
    url = postgres.new_database()
    blobs = (tmp_path / "blobs").resolve().as_uri()
    args = ("--catalog", url, "--blob-url", blobs, "--auth", "none", "--embedding-model", TEST_EMBEDDING)
    with serve_http(tmp_path / "one", *args) as port_one, serve_http(tmp_path / "three", *args) as port_three:
        async with mcp_http(port_one) as writer:
            made = (await writer.call_tool("create_artifact", {"name": "watched", "content": "v1"})).structured_content
            assert made is not None
            async with mcp_http(port_three) as watcher, watcher.listen(resource_subscriptions=[made["uri"]],
                                                                       resources_list_changed=True) as events:
                await anyio.sleep(0.5)  # the listen stream is open before the write
                await writer.call_tool("update_artifact", {"artifact_id": made["artifact_id"], "tags": ["seen"]})
                with anyio.fail_after(10):
                    event = await events.__anext__()
                    while not isinstance(event, ResourceUpdated):
                        event = await events.__anext__()
                assert event.uri == made["uri"]


def test_concurrent_new_versions_over_replicas_never_fork_an_artifact(postgres: Any, tmp_path: Path) -> None:
    import concurrent.futures

    with replicas(postgres, tmp_path, 2) as clients:
        made = clients[0].post(f"{NS}/artifacts", json={"name": "contested", "content": "v1"})
        root = made.json()["artifact_id"]

        log = postgres.root / "postgres.log"
        log_start = log.stat().st_size

        def put(i: int) -> int:
            r = clients[i % 2].put(f"{NS}/artifacts/{root}", json={"content": f"edit {i}"})
            assert r.status_code in (200, 409), r.text
            if r.status_code == 409:
                assert "re-read it" in r.json()["detail"], r.text
            return r.status_code

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(put, range(96)))
        versions = clients[1].get(f"{NS}/artifacts/{root}/versions").json()
        listed = versions["versions"] if isinstance(versions, dict) else versions
        numbers = sorted(v["version"] for v in listed)
        assert numbers == list(range(1, len(numbers) + 1))  # no version number twice
        assert len(numbers) == 1 + codes.count(200)
        assert [v["is_latest"] for v in sorted(listed, key=lambda v: v["version"])][-1] is True
        assert sum(v["is_latest"] for v in listed) == 1
        # Both replicas index while the versions land (claims, commits and new versions on the same rows): every
        # write takes the artifact's row before its job and chunk rows, so the database never has to break a
        # deadlock, and the latest version ends indexed on both (no job left running).
        latest = max(listed, key=lambda v: v["version"])["artifact_id"]
        for c in clients:
            _until(lambda c=c: c.get(f"{NS}/artifacts/{latest}").json()["is_indexed"])
        with open(log, "rb") as f:
            f.seek(log_start)
            assert b"deadlock detected" not in f.read()


def test_searches_on_one_replica_while_another_writes_never_fail(postgres: Any, tmp_path: Path) -> None:
    import concurrent.futures

    with replicas(postgres, tmp_path, 2) as (writer, reader):
        stop = time.monotonic() + 6

        def write(k: int) -> int:
            n = 0
            while time.monotonic() < stop:
                r = writer.post(f"{NS}/artifacts", json={"name": f"w{k}-{n}", "content": f"burst entry {k} {n}"})
                assert r.status_code == 201, r.text
                n += 1
            return n

        def search() -> list[int]:
            codes = []
            while time.monotonic() < stop:
                for mode in ("keyword", "hybrid", "semantic"):
                    r = reader.post(f"{NS}/artifacts/query", json={"query": "burst entry", "mode": mode})
                    codes.append(r.status_code)
                    assert r.status_code == 200, r.text  # a chunk committed elsewhere mid-query is no error
            return codes

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            writes = [pool.submit(write, k) for k in range(3)]
            searches = pool.submit(search)
            assert sum(w.result() for w in writes) > 0 and len(searches.result()) > 0
