"""Answer before loading: the server answers `initialize` and lists its tools before the store (DuckDB, the
embedding model) is loaded, and never loads LlamaIndex (the index child chunks); calls wait for the store; a query
that comes before the model is warm waits with progress notifications; a store that cannot be opened is a clear
error on the first call, not a hang."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import stdio_client

from artifact_mcp.server.app import build_app
from artifact_mcp.server.settings import Settings
from artifact_mcp.storage.errors import Unavailable
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.store import ArtifactStore
from tests.conftest import TEST_EMBEDDING, call, server_env
from tests.test_stdio import TOOLS, open_client, stdio_params

pytestmark = pytest.mark.anyio

# What a server must not have imported before it answers `initialize` (each costs 0.1-2 s, or hundreds of MB):
# they are imported when the store opens, in the background, in the process that owns it.
HEAVY = ("llama_index", "torch", "transformers", "sentence_transformers", "onnxruntime", "onnx", "tokenizers",
         "safetensors", "fpdf", "duckdb", "numpy", "pypdf", "tree_sitter", "fastapi")

PROBE = """
import json, sys
from artifact_mcp.server.app import build_app
from artifact_mcp.server.cli import _parser, _settings
from artifact_mcp.server.stdio import run_stdio
args = _parser().parse_args(["serve", "--data-dir", sys.argv[1]])
app, runtime = build_app(_settings(args))
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_building_the_stdio_server_imports_nothing_heavy(tmp_path: Path) -> None:
    """Everything `serve` does before its event loop starts (stdio, the default model): none of HEAVY."""
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "data")], capture_output=True, text=True,
                         env=server_env(ARTIFACT_MCP_EMBEDDING_MODEL="default"), timeout=60, check=True)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert not loaded & set(HEAVY), f"imported before the handshake: {sorted(loaded & set(HEAVY))}"
    assert not (tmp_path / "data" / "catalog.duckdb").exists(), "the store was opened while building the app"


SERVE_PROBE = """
import json, sys
import anyio
from mcp import Client
from artifact_mcp.server.app import build_app
from artifact_mcp.server.cli import _parser, _settings

async def main():
    args = _parser().parse_args(["serve", "--data-dir", sys.argv[1]])
    app, runtime = build_app(_settings(args))
    async with Client(app) as client:
        made = await client.call_tool("create_artifact", {"name": "otters", "wait_for_index": True,
                                      "content": "Sea otters hold hands while they sleep, so they do not drift."})
        assert made.structured_content["is_indexed"], made
        for mode in ("hybrid", "semantic", "keyword"):
            found = await client.call_tool("query_artifacts", {"query": "do otters drift apart asleep", "mode": mode})
            assert found.structured_content["results"][0]["artifact"]["name"] == "otters", found
        listed = await client.call_tool("list_artifacts", {})
        assert listed.structured_content["total"] == 1
        print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))

anyio.run(main)
"""


def test_serving_and_searching_with_the_default_model_imports_no_llamaindex(tmp_path: Path) -> None:
    """Chunking (LlamaIndex's node parsers) runs in the index preparation child; the serving process embeds queries
    with the ONNX encoder and filters chunks with the store's own filters: LlamaIndex (~1 s of imports, ~50 MiB)
    never loads in it, and so no query waits for it."""
    from artifact_mcp.storage.index.onnx.cache import default_cache_dir

    # A cold tokenizer cache (the cl100k ranks are parsed from llama-index-core's copy of the BPE file, found
    # without importing it); the model's own cache as it is, so its ONNX file is not rebuilt.
    env = server_env(ARTIFACT_MCP_EMBEDDING_MODEL="default", ARTIFACT_MCP_MODEL_CACHE_DIR=str(default_cache_dir()),
                     XDG_CACHE_HOME=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", SERVE_PROBE, str(tmp_path / "data")], capture_output=True,
                         text=True, env=env, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert "onnxruntime" in loaded and "duckdb" in loaded  # it did serve from the store, with the model
    assert not loaded & {"llama_index", "torch", "sqlalchemy"}, sorted(loaded & {"llama_index", "torch", "sqlalchemy"})
    assert list((tmp_path / "cache").rglob("cl100k_base-*.marshal")), "the tokenizer was not loaded (or cached)"


@contextmanager
def lock_held(data_dir: Path) -> Iterator[None]:
    """Hold the store's ownership lock the way another owner would (without serving its socket): a server started
    now can neither own the store nor forward to its owner until the lock is released."""
    data_dir.mkdir(parents=True)
    fd = os.open(data_dir / "catalog.duckdb.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


async def test_stdio_server_answers_and_lists_tools_while_its_store_cannot_open(tmp_path: Path, era: str) -> None:
    data_dir = tmp_path / "data"
    release = threading.Event()

    def hold() -> None:
        with lock_held(data_dir):
            release.wait(60)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        with (tmp_path / "stderr.log").open("w") as errlog:
            async with open_client(stdio_client(stdio_params(data_dir, tmp_path), errlog=errlog), era) as client:
                # Connected (the handshake in the legacy era) and the tools listed, with no store behind them yet.
                assert {t.name for t in (await client.list_tools()).tools} >= TOOLS
                assert "owning store" not in (tmp_path / "stderr.log").read_text()
                answered = anyio.Event()
                listed: dict = {}

                async def list_artifacts() -> None:
                    listed.update(await call(client, "list_artifacts", {}))
                    answered.set()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(list_artifacts)
                    with anyio.move_on_after(0.5):
                        await answered.wait()
                    assert not answered.is_set(), "a call was answered before the store was open"
                    release.set()  # the other "owner" goes away: this server takes the store over
                    with anyio.fail_after(40):  # it imports and opens the store now (seconds on a busy machine)
                        await answered.wait()
                assert listed["total"] == 0
    finally:
        release.set()
        holder.join(10)
    assert "owning store" in (tmp_path / "stderr.log").read_text()


@pytest.fixture
def cold_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The owner's warm-up (loading the embedding model) blocks until the returned event is set."""
    gate = threading.Event()
    warm_up = ArtifactStore.warm_up

    def slow_warm_up(self: ArtifactStore) -> None:
        gate.wait(30)
        warm_up(self)

    monkeypatch.setattr(ArtifactStore, "warm_up", slow_warm_up)
    try:
        yield gate
    finally:
        gate.set()


async def test_a_query_before_the_model_is_warm_waits_with_progress(settings: Settings, era: str,
                                                                     cold_model: threading.Event) -> None:
    app, _ = build_app(settings)
    async with Client(app, mode=era) as client:
        made = await call(client, "create_artifact", {"name": "warm-up notes", "content": "the kettle is boiling",
                                                      "wait_for_index": True})
        # Keyword search embeds nothing: it does not wait for the model.
        seen: list[tuple[float, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, message))
            if len(seen) == 2:
                cold_model.set()  # the model "finishes loading" once the caller has been told twice

        with anyio.fail_after(10):
            found = await client.call_tool("query_artifacts", {"query": "kettle", "mode": "keyword"},
                                           progress_callback=on_progress)
        assert [h["artifact"]["artifact_id"] for h in found.structured_content["results"]] == [made["artifact_id"]]
        assert seen == []
        assert not cold_model.is_set()
        with anyio.fail_after(20):
            found = await client.call_tool("query_artifacts", {"query": "kettle boiling"},
                                           progress_callback=on_progress)
        assert not found.is_error, found.content
        assert [h["artifact"]["artifact_id"] for h in found.structured_content["results"]] == [made["artifact_id"]]
        assert len(seen) >= 2
        assert all(message and "waiting for the embedding model to load" in message for _, message in seen), seen
        assert [p for p, _ in seen] == sorted({p for p, _ in seen}), "progress must increase"
        # Warm now: the next query reports nothing.
        seen.clear()
        await client.call_tool("query_artifacts", {"query": "kettle"}, progress_callback=on_progress)
        assert seen == []


async def test_a_query_through_a_forwarder_waits_for_the_owners_model(tmp_path: Path,
                                                                    cold_model: threading.Event) -> None:
    """The owner (this process, its model "loading") and a stdio server forwarding to it: the forwarder's query
    waits for the owner's model, with progress."""
    data_dir = tmp_path / "data"
    cfg = Settings(data_dir=data_dir, embedding_model=TEST_EMBEDDING, _env_file=None).store_config()
    async with StoreClient(cfg) as owner:
        assert owner.role == "owner"
        with (tmp_path / "stderr.log").open("w") as errlog:
            async with open_client(stdio_client(stdio_params(data_dir, tmp_path), errlog=errlog)) as client:
                seen: list[str | None] = []

                async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                    seen.append(message)
                    cold_model.set()

                with anyio.fail_after(20):
                    found = await client.call_tool("query_artifacts", {"query": "anything"},
                                                   progress_callback=on_progress)
                assert not found.is_error, found.content
                assert seen and "waiting for the embedding model to load" in (seen[0] or ""), seen
        assert await owner.is_warm()
    assert "forwarding to it" in (tmp_path / "stderr.log").read_text()


@pytest.fixture
def unopenable(settings: Settings, tmp_path: Path) -> Settings:
    """Settings whose data directory cannot be created (its parent is a file; root may write anywhere)."""
    (tmp_path / "a-file").write_text("not a directory")
    return settings.model_copy(update={"data_dir": tmp_path / "a-file" / "data"})


async def test_a_store_that_cannot_open_is_a_clear_error_on_each_call(unopenable: Settings, era: str) -> None:
    app, _ = build_app(unopenable)
    with anyio.fail_after(20):
        async with Client(app, mode=era) as client:
            assert {t.name for t in (await client.list_tools()).tools} >= TOOLS
            for name, args in (("list_artifacts", {}), ("query_artifacts", {"query": "anything"}),
                               ("create_artifact", {"name": "n", "content": "c"})):
                result = await client.call_tool(name, args)
                assert result.is_error, (name, result)
                text = result.content[0].text
                assert "could not be opened" in text and "NotADirectoryError" in text, text


async def test_a_client_opened_in_the_foreground_raises_why(unopenable: Settings) -> None:
    with anyio.fail_after(20), pytest.raises(Unavailable, match="could not be opened"):
        async with StoreClient(unopenable.store_config()):
            pass
