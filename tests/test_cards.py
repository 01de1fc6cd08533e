"""Reads come from each row's card (every column but content_text as one JSON text): after every kind of write the
card says what the columns say, list pages carry every field the list answer promises, and migration 4 builds the
same cards from existing rows as the writes do."""

from __future__ import annotations

import json

import anyio
import pytest
from mcp import Client
from mcp.server import MCPServer

from artifact_mcp.server.app import build_app
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.server.settings import Settings
from artifact_mcp.storage.clock import utcnow
from artifact_mcp.storage.models import ArtifactSummary
from artifact_mcp.storage.repositories.duckdb.artifacts import CARD_COLUMNS
from artifact_mcp.storage.repositories.duckdb.migrations import MIGRATIONS
from artifact_mcp.storage.repositories.rows import ARTIFACT_COLUMNS, ArtifactRow
from artifact_mcp.storage.store import ArtifactStore
from tests.conftest import call, indexed

pytestmark = pytest.mark.anyio


@pytest.fixture
def era() -> str:
    return "auto"


@pytest.fixture
async def store(client: Client, app_runtime: tuple[MCPServer, Runtime]) -> ArtifactStore:
    owner = app_runtime[1].store
    await owner.opened()  # the server opens its store in the background
    assert owner.store is not None
    return owner.store


def column_rows(store: ArtifactStore) -> dict[str, ArtifactRow]:
    """Every row as its columns say (not through the card)."""
    with store._lock:
        rows = store.con.execute(f"SELECT {', '.join(ARTIFACT_COLUMNS)} FROM artifacts").fetchall()
    out = {}
    for values in rows:
        row = ArtifactRow(*values)
        row.metadata = json.loads(row.metadata) if isinstance(row.metadata, str) else row.metadata
        out[row.artifact_id] = row
    return out


def card_rows(store: ArtifactStore) -> dict[str, ArtifactRow]:
    with store._lock:
        ids = [r[0] for r in store.con.execute("SELECT artifact_id FROM artifacts").fetchall()]
        return store.db.artifacts.get_many(ids, utcnow(), with_content=True)


async def write_every_way(client: Client) -> dict[str, str]:
    """Creates, in-place updates (metadata replaced, TTL set then cleared, tags), new versions, a deleted version
    (an older one is latest again), a promotion, and the index jobs of all of them."""
    a = await call(client, "create_artifact", {
        "name": "a", "content": "alpha text", "tags": ["t1"], "metadata": {"k": 1, "gone": None, "deep": {"x": 1}},
        "thread_id": "th", "summary": "sum", "keywords": ["kw"], "ttl_seconds": 3600, "source": "src"})
    b = await call(client, "create_artifact", {"name": "b", "content": {"json": [1, 2]}, "is_pinned": True})
    await call(client, "update_artifact", {"artifact_id": a["artifact_id"], "metadata": {"deep": {"y": 2}},
                                           "tags": ["t2", "t3"], "description": "desc"})
    await call(client, "update_artifact", {"artifact_id": a["artifact_id"], "clear_ttl": True})
    v2 = (await call(client, "update_artifact", {"artifact_id": a["artifact_id"], "content": "alpha two"}))[
        "artifact"]
    v3 = (await call(client, "update_artifact", {"artifact_id": a["artifact_id"], "content": "alpha three",
                                                 "name": "a3"}))["artifact"]
    await call(client, "delete_artifact", {"artifact_id": v3["artifact_id"], "all_versions": False})
    await call(client, "promote_artifact", {"artifact_id": b["artifact_id"]})
    ids = {"a": a["artifact_id"], "b": b["artifact_id"], "v2": v2["artifact_id"]}
    with anyio.fail_after(60):
        for artifact_id in (ids["v2"], ids["b"]):
            await indexed(client, artifact_id)
        # Nothing may change the rows under the comparisons: wait until no job is left to run.
        for artifact_id in ids.values():
            while any(job["status"] in ("queued", "running", "retrying") for job in (await call(
                    client, "list_artifact_jobs", {"artifact_id": artifact_id}))["jobs"]):
                await anyio.sleep(0.05)
    return ids


async def test_cards_follow_every_write(client: Client, store: ArtifactStore) -> None:
    ids = await write_every_way(client)
    columns, cards = column_rows(store), card_rows(store)
    assert set(columns) == set(cards) == {ids["a"], ids["b"], ids["v2"]}
    for artifact_id, row in columns.items():
        assert cards[artifact_id] == row, artifact_id
    replaced = cards[ids["a"]]
    assert replaced.metadata == {"deep": {"y": 2}} and replaced.expires_at is None and not replaced.is_latest
    assert cards[ids["v2"]].is_latest and cards[ids["v2"]].is_indexed
    assert cards[ids["b"]].promoted_to_source_id is not None


async def test_list_pages_carry_every_promised_field(client: Client) -> None:
    ids = await write_every_way(client)
    page = await call(client, "list_artifacts", {"latest_only": False, "limit": 2})
    rest = await call(client, "list_artifacts", {"latest_only": False, "cursor": page["next_cursor"]})
    items = page["artifacts"] + rest["artifacts"]
    assert {a["artifact_id"] for a in items} == set(ids.values())
    for item in items:
        assert set(item) == set(ArtifactSummary.model_fields), item.keys()
        got = await call(client, "get_artifact", {"artifact_id": item["artifact_id"], "max_chars": 0})
        # What a list row's card says is what get says.
        assert item == {k: got[k] for k in item}
    versions = await call(client, "list_artifact_versions", {"artifact_id": ids["v2"]})
    assert [v["version"] for v in versions["versions"]] == [1, 2]


async def test_migration_builds_the_cards_writes_build(client: Client, store: ArtifactStore) -> None:
    await write_every_way(client)
    before = card_rows(store)
    (version, _, statements) = MIGRATIONS[3]
    assert version == 4
    with store._lock:
        written = dict(store.con.execute("SELECT artifact_id, card FROM artifacts").fetchall())
        store.con.execute("UPDATE artifacts SET card = NULL")
        store.con.execute(statements[1])  # the backfill, from the columns
    assert card_rows(store) == before
    with store._lock:
        rebuilt = dict(store.con.execute("SELECT artifact_id, card FROM artifacts").fetchall())
    # Every card column, written as the repository writes it (nulls kept, where an update's merge drops them;
    # timestamps as DuckDB prints them, which read back the same).
    assert set(rebuilt) == set(written)
    for card in rebuilt.values():
        assert set(json.loads(card)) == set(CARD_COLUMNS)


def _text_compression(path: str) -> set[str]:
    import duckdb

    con = duckdb.connect(path)
    try:
        con.execute("CHECKPOINT")  # rows are compressed when they are checkpointed
        return {r[0] for r in con.execute(
            "SELECT compression FROM pragma_storage_info('artifacts') WHERE column_name = 'content_text' "
            "AND segment_type = 'VARCHAR'").fetchall()}
    finally:
        con.close()


async def test_migration_stores_long_text_uncompressed(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A catalog written before migration 5 keeps its texts, and they are stored uncompressed after it (DuckDB's
    ZSTD decompresses a whole vector of rows to read one: see the migration)."""
    from artifact_mcp.storage.repositories.duckdb import database

    monkeypatch.setattr(database, "MIGRATIONS", MIGRATIONS[:4])
    texts = [" ".join(f"paragraph {i} line {j}: the measured result was {i * j % 97} units." for j in range(400))
             for i in range(30)]
    async with Client(build_app(settings)[0]) as client:
        ids = [(await call(client, "create_artifact", {"name": f"long {i}", "content": t}))["artifact_id"]
               for i, t in enumerate(texts)]
    path = str(settings.data_dir / "catalog.duckdb")
    # What DuckDB picks for such texts when left alone (if a DuckDB release stops doing so, migration 5's reason
    # is gone: see its comment).
    assert _text_compression(path) == {"ZSTD"}

    monkeypatch.setattr(database, "MIGRATIONS", MIGRATIONS)
    async with Client(build_app(settings)[0]) as client:
        for artifact_id, text in zip(ids, texts, strict=True):
            got = await call(client, "get_artifact", {"artifact_id": artifact_id, "max_chars": 100_000})
            assert got["content"] == text
        await call(client, "create_artifact", {"name": "after", "content": texts[0]})
    assert _text_compression(path) == {"Uncompressed"}
    catalog = database.DuckDBRepositories(path)
    try:
        assert catalog.schema_version() == MIGRATIONS[-1][0] == 5
    finally:
        catalog.close()
