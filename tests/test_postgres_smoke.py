"""The catalog on PostgreSQL (and the same checks on DuckDB): the backend the settings name is the one written."""

from __future__ import annotations

import anyio
import pytest
from mcp import Client
from mcp.server import MCPServer

from artifact_mcp.server.runtime import Runtime
from tests.conftest import call, indexed

pytestmark = pytest.mark.anyio


async def test_the_named_backend_holds_the_artifacts(app_runtime: tuple[MCPServer, Runtime], backend: str) -> None:
    app, runtime = app_runtime
    async with Client(app, mode="auto") as client:
        made = await call(client, "create_artifact", {"name": "plan", "content": "alpha beta gamma", "tags": ["x"]})
        with anyio.fail_after(30):
            await indexed(client, made["artifact_id"])
        found = await call(client, "query_artifacts", {"query": "beta", "mode": "keyword"})
        assert [r["artifact"]["artifact_id"] for r in found["results"]] == [made["artifact_id"]]
        db = runtime.store.store.db
        assert type(db).__name__ == {"duckdb": "DuckDBRepositories", "postgres": "PostgresRepositories"}[backend]
        assert db.artifacts.count() == 1 and db.chunks.count() >= 1
