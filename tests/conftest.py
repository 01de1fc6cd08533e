"""Shared fixtures: a real DuckDB file, a real fsspec filesystem, a real MCP client session."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server import MCPServer

from artifact_mcp.server.app import build_app
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.server.settings import Settings

REPO = Path(__file__).resolve().parent.parent
# Tests index with the built-in hashing embedding (deterministic, no torch start-up in every server
# subprocess); test_recall_e2e.py runs the real default model.
TEST_EMBEDDING = "hash:384"


def server_env(**extra: str) -> dict[str, str]:
    """The environment for a server subprocess: ours without ARTIFACT_MCP_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARTIFACT_MCP_")}
    env["ARTIFACT_MCP_EMBEDDING_MODEL"] = TEST_EMBEDDING
    env.update(extra)
    return env


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ARTIFACT_MCP_"):
            monkeypatch.delenv(key)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# The suites that run against both catalog backends (the `backend` fixture below); every other test uses DuckDB.
BOTH_BACKENDS = {f"tests.{m}" for m in (
    "test_postgres_smoke", "test_storage", "test_tools", "test_rest", "test_aimable", "test_query", "test_generate",
    "test_isolation", "test_stats", "test_archive",
)}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames and metafunc.module.__name__ in BOTH_BACKENDS:
        metafunc.parametrize("backend", ["duckdb", "postgres"], indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One throwaway PostgreSQL server for the session (tests/support_postgres.py)."""
    from tests.support_postgres import postgres_server

    with postgres_server() as server:
        yield server


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return getattr(request, "param", "duckdb")


@pytest.fixture
def catalog_path(backend: str, request: pytest.FixtureRequest) -> str | None:
    """None (the data directory's DuckDB file) or a fresh PostgreSQL database's URL."""
    if backend == "postgres":
        return request.getfixturevalue("postgres").new_database()
    return None


@pytest.fixture
def settings(tmp_path: Path, catalog_path: str | None) -> Settings:
    """A file-backed catalog (DuckDB, or PostgreSQL for `backend`) and an in-memory fsspec blob store unique to
    the test."""
    return Settings(
        data_dir=tmp_path / "data",
        catalog_path=catalog_path,
        blob_url=f"memory://blobs-{uuid.uuid4().hex}",
        allowed_roots=[str(tmp_path / "allowed")],
        max_upload_bytes=1024 * 1024,
        memory_limit="512MB",
        embedding_model=TEST_EMBEDDING,
        _env_file=None,
    )


@pytest.fixture
def app_runtime(settings: Settings) -> tuple[MCPServer, Runtime]:
    return build_app(settings)


@pytest.fixture(params=["auto", "legacy"])
def era(request: pytest.FixtureRequest) -> str:
    """Both protocol eras: 'auto' speaks 2026-07-28 (stateless), 'legacy' the 2025-11-25 handshake."""
    return request.param


@pytest.fixture
async def client(app_runtime: tuple[MCPServer, Runtime], era: str) -> AsyncIterator[Client]:
    app, _ = app_runtime
    async with Client(app, mode=era) as c:
        yield c


async def call(client: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured content."""
    result = await client.call_tool(name, args)
    assert not result.is_error, result.content[0].text if result.content else result
    assert result.structured_content is not None
    return result.structured_content


async def call_error(client: Client, name: str, args: dict[str, Any]) -> str:
    """Call a tool that must fail with a tool error; return the error text."""
    result = await client.call_tool(name, args)
    assert result.is_error, f"expected an error from {name}, got {result.structured_content}"
    return result.content[0].text


async def indexed(client: Client, artifact_id: str) -> dict[str, Any]:
    """Poll get_artifact until the background index job has made the artifact searchable; its metadata then.
    The caller bounds the wait (anyio.fail_after)."""
    while not (art := await call(client, "get_artifact", {"artifact_id": artifact_id}))["is_indexed"]:
        await anyio.sleep(0.05)
    return art
