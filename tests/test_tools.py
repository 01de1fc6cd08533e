"""The seven artifact tools, driven through a real MCP client session in both protocol eras."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import jsonschema
import pytest
from mcp import Client
from mcp.server import MCPServer

from artifact_mcp.server.runtime import Runtime
from artifact_mcp.server.settings import Settings
from tests.conftest import call, call_error

pytestmark = pytest.mark.anyio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
TOOLS = {
    "list_artifacts", "get_artifact", "create_artifact", "upload_artifact", "update_artifact", "delete_artifact",
    "list_artifact_versions",
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def create(client: Client, name: str = "doc", content: Any = "hello", **extra: Any) -> dict[str, Any]:
    return await call(client, "create_artifact", {"name": name, "content": content, **extra})


async def listing(client: Client, **args: Any) -> dict[str, Any]:
    return await call(client, "list_artifacts", args)


async def ids_of(client: Client, **args: Any) -> set[str]:
    page = await listing(client, limit=200, **args)
    assert not page["has_more"]
    return {a["artifact_id"] for a in page["artifacts"]}


# --- create / get ------------------------------------------------------------------------------------


async def test_create_text_returns_metadata(client: Client) -> None:
    art = await create(client, "notes", "# Title\nbody", artifact_type="report", description="d",
                       summary="s", keywords=["k1"], source="agent", created_by="bot-1")
    assert art["artifact_id"].startswith("art_") and len(art["artifact_id"]) == 36
    assert art["root_artifact_id"] == art["artifact_id"]
    assert art["version"] == 1 and art["is_latest"] is True and art["replaced_by_version"] is None
    assert art["name"] == "notes" and art["artifact_type"] == "report"
    assert art["mime_type"] == "text/plain"
    assert art["size_bytes"] == len(b"# Title\nbody")
    assert art["has_file"] is False and art["sha256"] is None
    assert art["content_preview"] == "# Title\nbody"
    # Returned before the background index job has run.
    assert art["status"] == "pending" and art["is_indexed"] is False and art["chunk_count"] == 0
    assert art["created_by"] == "bot-1" and art["source"] == "agent"
    assert art["keywords"] == ["k1"] and art["summary"] == "s" and art["description"] == "d"
    assert (art["org_id"], art["workspace_id"], art["namespace_id"]) == ("default", "default", "default")
    assert art["uri"] == f"artifact://{art['artifact_id']}"
    assert ts(art["created_at"]).tzinfo is not None


async def test_json_content_keeps_its_type(client: Client) -> None:
    for content in ({"a": 1, "b": [1, 2, {"c": None}], "d": "x"}, [1, "two", {"three": 3}], [], {}):
        art = await create(client, "data", content)
        assert art["mime_type"] == "application/json"
        got = await call(client, "get_artifact", {"artifact_id": art["artifact_id"]})
        assert got["content"] == content
        assert type(got["content"]) is type(content)


async def test_json_looking_string_stays_a_string(client: Client) -> None:
    for text in ("[1, 2]", '{"a": 1}', "42", "true", "null", '"quoted"'):
        art = await create(client, "s", text)
        assert art["mime_type"] == "text/plain", text
        got = await call(client, "get_artifact", {"artifact_id": art["artifact_id"]})
        assert got["content"] == text
        assert got["content_text"] == text


async def test_get_returns_content_and_text(client: Client) -> None:
    art = await create(client, "n", "some words")
    result = await client.call_tool("get_artifact", {"artifact_id": art["artifact_id"]})
    assert not result.is_error
    got = result.structured_content
    assert got["content"] == "some words" and got["content_text"] == "some words"
    assert got["content_truncated"] is False
    assert "some words" in result.content[0].text


async def test_get_truncates_to_max_chars(client: Client) -> None:
    text = "abcdefghij" * 100
    art = await create(client, "long", text)
    got = await call(client, "get_artifact", {"artifact_id": art["artifact_id"], "max_chars": 25})
    assert got["content_truncated"] is True
    assert got["content_text"] == text[:25]
    assert got["content"] == text[:25]
    full = await call(client, "get_artifact", {"artifact_id": art["artifact_id"], "max_chars": 1000})
    assert full["content_truncated"] is False and full["content"] == text
    meta_only = await call(client, "get_artifact", {"artifact_id": art["artifact_id"], "max_chars": 0})
    assert meta_only["content"] is None and meta_only["content_text"] is None
    assert meta_only["size_bytes"] == 1000


async def test_truncated_json_content_is_not_returned_as_broken_json(client: Client) -> None:
    art = await create(client, "j", {"key": "v" * 200})
    got = await call(client, "get_artifact", {"artifact_id": art["artifact_id"], "max_chars": 10})
    assert got["content_truncated"] is True
    assert got["content"] is None
    assert len(got["content_text"]) == 10


# --- upload --------------------------------------------------------------------------------------------


async def test_upload_detects_mime_from_magic_bytes(client: Client) -> None:
    art = await call(client, "upload_artifact", {"name": "pic", "data_base64": b64(PNG)})
    assert art["mime_type"] == "image/png"
    assert art["has_file"] is True
    assert art["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert art["size_bytes"] == len(PNG)
    assert art["artifact_type"] == "file"
    got = await call(client, "get_artifact", {"artifact_id": art["artifact_id"]})
    assert got["content_text"] is None and got["content"] is None


async def test_upload_detects_mime_from_file_name_and_extracts_text(client: Client) -> None:
    text = "# Heading\n\nSome *markdown* — with ünïcode.\n"
    art = await call(client, "upload_artifact", {"data_base64": b64(text.encode()), "file_name": "notes.md"})
    assert art["name"] == "notes.md"  # defaults to the file name
    assert art["file_name"] == "notes.md"
    assert art["mime_type"] == "text/markdown"
    assert art["size_bytes"] == len(text.encode())
    got = await call(client, "get_artifact", {"artifact_id": art["artifact_id"]})
    assert got["content_text"] == text
    assert got["content_preview"] == text


async def test_upload_declared_mime_wins(client: Client) -> None:
    art = await call(client, "upload_artifact", {"name": "t", "data_base64": b64(b"a,b\n1,2\n"), "file_name": "x.bin",
                                                 "mime_type": "text/csv"})
    assert art["mime_type"] == "text/csv"
    got = await call(client, "get_artifact", {"artifact_id": art["artifact_id"]})
    assert got["content_text"] == "a,b\n1,2\n"


async def test_upload_unknown_binary_is_octet_stream(client: Client) -> None:
    data = bytes([0, 159, 146, 150]) * 10
    art = await call(client, "upload_artifact", {"name": "raw", "data_base64": b64(data)})
    assert art["mime_type"] == "application/octet-stream"


async def test_identical_bytes_are_deduplicated(
    client: Client, app_runtime: tuple[MCPServer, Runtime]
) -> None:
    data = b"same bytes in two artifacts\n" * 10
    a = await call(client, "upload_artifact", {"name": "a", "data_base64": b64(data), "file_name": "a.txt"})
    b = await call(client, "upload_artifact", {"name": "b", "data_base64": b64(data), "file_name": "b.txt"})
    assert a["artifact_id"] != b["artifact_id"]
    assert a["sha256"] == b["sha256"] == hashlib.sha256(data).hexdigest()
    blobs = app_runtime[1].store.store.blobs
    assert len(list(blobs.iter_keys())) == 1


async def test_upload_from_path_inside_allowed_root(client: Client, settings: Settings) -> None:
    root = Path(settings.allowed_roots[0])
    (root / "sub").mkdir(parents=True)
    target = root / "sub" / "report.md"
    target.write_text("# Report\nall good\n")
    art = await call(client, "upload_artifact", {"path": str(target), "tags": ["fs"]})
    assert art["name"] == "report.md" and art["file_name"] == "report.md"
    assert art["mime_type"] == "text/markdown"
    assert art["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert art["tags"] == ["fs"]
    got = await call(client, "get_artifact", {"artifact_id": art["artifact_id"]})
    assert got["content_text"] == "# Report\nall good\n"


# --- update --------------------------------------------------------------------------------------------


async def test_update_with_content_creates_new_version(client: Client) -> None:
    v1 = await create(client, "doc", "first", tags=["t1"], thread_id="th-1", metadata={"k": 1})
    out = await call(client, "update_artifact", {"artifact_id": v1["artifact_id"], "content": "second"})
    assert out["new_version"] is True
    v2 = out["artifact"]
    assert v2["artifact_id"] != v1["artifact_id"]
    assert v2["root_artifact_id"] == v1["artifact_id"]
    assert v2["version"] == 2 and v2["is_latest"] is True and v2["replaced_by_version"] is None
    # descriptive fields are inherited
    assert v2["name"] == "doc" and v2["tags"] == ["t1"] and v2["thread_id"] == "th-1" and v2["metadata"] == {"k": 1}
    old = await call(client, "get_artifact", {"artifact_id": v1["artifact_id"]})
    assert old["is_latest"] is False and old["replaced_by_version"] == 2
    assert old["content"] == "first"
    new = await call(client, "get_artifact", {"artifact_id": v2["artifact_id"]})
    assert new["content"] == "second"
    # list shows only the latest by default
    assert await ids_of(client) == {v2["artifact_id"]}


async def test_update_with_file_bytes_creates_new_version(client: Client) -> None:
    v1 = await call(client, "upload_artifact", {"data_base64": b64(b"one\n"), "file_name": "f.txt"})
    out = await call(client, "update_artifact", {"artifact_id": v1["artifact_id"], "data_base64": b64(PNG)})
    v2 = out["artifact"]
    assert out["new_version"] is True and v2["version"] == 2
    assert v2["mime_type"] == "image/png"
    assert v2["sha256"] == hashlib.sha256(PNG).hexdigest() != v1["sha256"]
    assert v2["file_name"] == "f.txt"


async def test_update_metadata_only_changes_in_place(client: Client) -> None:
    v1 = await create(client, "doc", "body", tags=["old"])
    await anyio.sleep(0.002)
    out = await call(client, "update_artifact", {"artifact_id": v1["artifact_id"], "tags": ["new", "x"],
                                                 "name": "renamed", "status": "archived", "metadata": {"m": True}})
    assert out["new_version"] is False
    art = out["artifact"]
    assert art["artifact_id"] == v1["artifact_id"] and art["version"] == 1
    assert art["tags"] == ["new", "x"] and art["name"] == "renamed" and art["status"] == "archived"
    assert art["metadata"] == {"m": True}
    assert ts(art["updated_at"]) > ts(v1["updated_at"])
    assert art["created_at"] == v1["created_at"]
    got = await call(client, "get_artifact", {"artifact_id": v1["artifact_id"]})
    assert got["content"] == "body" and got["tags"] == ["new", "x"]
    versions = await call(client, "list_artifact_versions", {"artifact_id": v1["artifact_id"]})
    assert versions["total"] == 1


async def test_update_with_nothing_to_change_is_an_error(client: Client) -> None:
    v1 = await create(client)
    text = await call_error(client, "update_artifact", {"artifact_id": v1["artifact_id"]})
    assert "nothing to update" in text


async def test_expected_version(client: Client) -> None:
    v1 = await create(client, "doc", "a")
    v2 = (await call(client, "update_artifact", {"artifact_id": v1["artifact_id"], "content": "b",
                                                 "expected_version": 1}))["artifact"]
    assert v2["version"] == 2
    text = await call_error(client, "update_artifact", {"artifact_id": v1["artifact_id"], "content": "c",
                                                        "expected_version": 1})
    assert "stale" in text and "latest version is 2" in text
    versions = await call(client, "list_artifact_versions", {"artifact_id": v1["artifact_id"]})
    assert versions["total"] == 2
    v3 = (await call(client, "update_artifact", {"artifact_id": v1["artifact_id"], "content": "c",
                                                 "expected_version": 2}))["artifact"]
    assert v3["version"] == 3
    # a metadata-only update honours expected_version too
    await call_error(client, "update_artifact", {"artifact_id": v3["artifact_id"], "tags": ["x"],
                                                 "expected_version": 2})
    ok = await call(client, "update_artifact", {"artifact_id": v3["artifact_id"], "tags": ["x"],
                                                "expected_version": 3})
    assert ok["artifact"]["tags"] == ["x"]


# --- delete / versions --------------------------------------------------------------------------------


async def test_delete_single_version_makes_previous_latest(client: Client) -> None:
    v1 = await create(client, "doc", "a")
    v2 = (await call(client, "update_artifact", {"artifact_id": v1["artifact_id"], "content": "b"}))["artifact"]
    out = await call(client, "delete_artifact", {"artifact_id": v2["artifact_id"], "all_versions": False})
    assert out["deleted_artifact_ids"] == [v2["artifact_id"]]
    assert out["remaining_versions"] == 1 and out["root_artifact_id"] == v1["artifact_id"]
    back = await call(client, "get_artifact", {"artifact_id": v1["artifact_id"]})
    assert back["is_latest"] is True and back["replaced_by_version"] is None
    assert await ids_of(client) == {v1["artifact_id"]}
    text = await call_error(client, "get_artifact", {"artifact_id": v2["artifact_id"]})
    assert v2["artifact_id"] in text


async def test_delete_middle_version_relinks_chain(client: Client) -> None:
    v1 = await create(client, "doc", "a")
    v2 = (await call(client, "update_artifact", {"artifact_id": v1["artifact_id"], "content": "b"}))["artifact"]
    v3 = (await call(client, "update_artifact", {"artifact_id": v1["artifact_id"], "content": "c"}))["artifact"]
    await call(client, "delete_artifact", {"artifact_id": v2["artifact_id"], "all_versions": False})
    versions = (await call(client, "list_artifact_versions", {"artifact_id": v3["artifact_id"]}))["versions"]
    assert [(v["version"], v["is_latest"], v["replaced_by_version"]) for v in versions] == [
        (1, False, 3), (3, True, None),
    ]


async def test_delete_all_versions(client: Client) -> None:
    keep = await create(client, "keep", "k")
    v1 = await create(client, "doc", "a")
    v2 = (await call(client, "update_artifact", {"artifact_id": v1["artifact_id"], "content": "b"}))["artifact"]
    out = await call(client, "delete_artifact", {"artifact_id": v1["artifact_id"]})
    assert sorted(out["deleted_artifact_ids"]) == sorted([v1["artifact_id"], v2["artifact_id"]])
    assert out["remaining_versions"] == 0
    for aid in (v1["artifact_id"], v2["artifact_id"]):
        await call_error(client, "get_artifact", {"artifact_id": aid})
        await call_error(client, "list_artifact_versions", {"artifact_id": aid})
    assert await ids_of(client, latest_only=False) == {keep["artifact_id"]}
    # deleting again: not found, and says so
    text = await call_error(client, "delete_artifact", {"artifact_id": v1["artifact_id"]})
    assert "no artifact" in text


async def test_list_artifact_versions(client: Client) -> None:
    v1 = await create(client, "doc", "a")
    v2 = (await call(client, "update_artifact", {"artifact_id": v1["artifact_id"], "content": "b"}))["artifact"]
    v3 = (await call(client, "update_artifact", {"artifact_id": v2["artifact_id"], "content": "c"}))["artifact"]
    for any_id in (v1["artifact_id"], v2["artifact_id"], v3["artifact_id"]):
        result = await client.call_tool("list_artifact_versions", {"artifact_id": any_id})
        out = result.structured_content
        assert out["root_artifact_id"] == v1["artifact_id"] and out["total"] == 3
        assert [v["artifact_id"] for v in out["versions"]] == [v1["artifact_id"], v2["artifact_id"],
                                                               v3["artifact_id"]]
        assert [v["version"] for v in out["versions"]] == [1, 2, 3]
        assert [v["is_latest"] for v in out["versions"]] == [False, False, True]
        assert [v["replaced_by_version"] for v in out["versions"]] == [2, 3, None]
        links = [c.uri for c in result.content if c.type == "resource_link"]
        assert links == [f"artifact://{v['artifact_id']}" for v in out["versions"]]


# --- list filters --------------------------------------------------------------------------------------


async def test_list_filters(client: Client) -> None:
    a = await create(client, "a", "a", thread_id="t1", artifact_type="report", tags=["x", "y"], created_by="alice",
                     wait_for_index=True)
    b = await create(client, "b", "b", thread_id="t1", artifact_type="summary", tags=["x"], status="archived")
    c = await create(client, "c", "c", thread_id="t2", artifact_type="code", created_by="bob", wait_for_index=True)
    a_id, b_id, c_id = a["artifact_id"], b["artifact_id"], c["artifact_id"]
    assert await ids_of(client) == {a_id, b_id, c_id}
    assert await ids_of(client, thread_id="t1") == {a_id, b_id}
    assert await ids_of(client, thread_id="t3") == set()
    assert await ids_of(client, artifact_types=["report", "code"]) == {a_id, c_id}
    assert await ids_of(client, artifact_types="report, summary") == {a_id, b_id}
    assert await ids_of(client, artifact_types="code") == {c_id}
    assert await ids_of(client, status="archived") == {b_id}
    assert await ids_of(client, status="ready") == {a_id, c_id}
    assert await ids_of(client, tags=["x"]) == {a_id, b_id}
    assert await ids_of(client, tags=["x", "y"]) == {a_id}
    assert await ids_of(client, tags=["y", "z"]) == set()
    assert await ids_of(client, created_by="alice") == {a_id}
    assert await ids_of(client, created_by="bob") == {c_id}
    assert await ids_of(client, thread_id="t1", tags=["x"], artifact_types="summary") == {b_id}
    page = await listing(client, thread_id="t1")
    assert page["total"] == 2 and page["has_more"] is False and page["next_cursor"] is None
    # list gives the preview, not the full content
    # list gives each artifact's card (its preview), not its content or every field: get_artifact has those
    assert all("content" not in x and "content_text" not in x and "metadata" not in x for x in page["artifacts"])
    assert all(x["content_preview"] and x["size_bytes"] > 0 and x["status"] for x in page["artifacts"])


async def test_list_latest_only_false_shows_old_versions(client: Client) -> None:
    v1 = await create(client, "doc", "a")
    v2 = (await call(client, "update_artifact", {"artifact_id": v1["artifact_id"], "content": "b"}))["artifact"]
    other = await create(client, "other", "o")
    assert await ids_of(client) == {v2["artifact_id"], other["artifact_id"]}
    assert await ids_of(client, latest_only=False) == {v1["artifact_id"], v2["artifact_id"], other["artifact_id"]}
    page = await listing(client, latest_only=False)
    assert page["total"] == 3


async def test_list_is_scoped(client: Client) -> None:
    mine = await create(client, "mine", "m")
    theirs = await create(client, "theirs", "t", workspace_id="ws-2")
    assert theirs["workspace_id"] == "ws-2"
    assert await ids_of(client) == {mine["artifact_id"]}
    assert await ids_of(client, workspace_id="ws-2") == {theirs["artifact_id"]}
    assert await ids_of(client, org_id="o2") == set()
    got = await call(client, "get_artifact", {"artifact_id": theirs["artifact_id"], "workspace_id": "ws-2"})
    assert got["content"] == "t"


async def test_ttl_expiry_and_pinning(client: Client) -> None:
    short = await create(client, "short", "s", ttl_seconds=1)
    pinned = await create(client, "pinned", "p", ttl_seconds=1, is_pinned=True)
    forever = await create(client, "forever", "f")
    assert short["expires_at"] is not None and short["is_expired"] is False
    assert short["ttl_seconds"] == 1
    assert forever["expires_at"] is None
    await anyio.sleep(1.1)
    visible = await ids_of(client)
    assert visible == {pinned["artifact_id"], forever["artifact_id"]}
    page = await listing(client, include_expired=True)
    assert page["total"] == 3
    flags = {a["artifact_id"]: a["is_expired"] for a in page["artifacts"]}
    assert flags == {short["artifact_id"]: True, pinned["artifact_id"]: False, forever["artifact_id"]: False}
    text = await call_error(client, "get_artifact", {"artifact_id": short["artifact_id"]})
    assert "expired" in text and "include_expired" in text
    got = await call(client, "get_artifact", {"artifact_id": short["artifact_id"], "include_expired": True})
    assert got["content"] == "s" and got["is_expired"] is True
    assert (await call(client, "get_artifact", {"artifact_id": pinned["artifact_id"]}))["is_expired"] is False
    # un-pinning an expired-by-time artifact makes it expire; clear_ttl brings the short one back
    await call(client, "update_artifact", {"artifact_id": short["artifact_id"], "clear_ttl": True})
    assert short["artifact_id"] in await ids_of(client)
    await call(client, "update_artifact", {"artifact_id": pinned["artifact_id"], "is_pinned": False})
    assert pinned["artifact_id"] not in await ids_of(client)


# --- pagination ----------------------------------------------------------------------------------------


async def _create_many(client: Client, n: int, **extra: Any) -> list[str]:
    return [(await create(client, f"item-{i}", f"body {i}", **extra))["artifact_id"] for i in range(n)]


async def test_keyset_pagination_walks_all_pages(client: Client) -> None:
    created = await _create_many(client, 25)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        args: dict[str, Any] = {"limit": 7}
        if cursor is not None:
            args["cursor"] = cursor
        page = await listing(client, **args)
        pages += 1
        assert page["total"] == 25
        seen += [a["artifact_id"] for a in page["artifacts"]]
        if page["has_more"]:
            assert len(page["artifacts"]) == 7
            assert page["next_cursor"]
            cursor = page["next_cursor"]
        else:
            assert page["next_cursor"] is None
            break
    assert pages == 4
    assert len(seen) == len(set(seen)) == 25
    assert seen == list(reversed(created))  # newest first, no gaps


async def test_exact_multiple_page_has_no_empty_tail(client: Client) -> None:
    await _create_many(client, 6)
    first = await listing(client, limit=3)
    assert first["has_more"] is True
    second = await listing(client, limit=3, cursor=first["next_cursor"])
    assert len(second["artifacts"]) == 3
    assert second["has_more"] is False and second["next_cursor"] is None


async def test_pagination_is_stable_when_artifacts_are_created_midway(client: Client) -> None:
    created = await _create_many(client, 25)
    first = await listing(client, limit=7)
    seen = [a["artifact_id"] for a in first["artifacts"]]
    newcomer = (await create(client, "newcomer", "n"))["artifact_id"]
    cursor = first["next_cursor"]
    while cursor:
        page = await listing(client, limit=7, cursor=cursor)
        assert page["total"] == 26
        seen += [a["artifact_id"] for a in page["artifacts"]]
        cursor = page["next_cursor"]
    assert newcomer not in seen
    assert len(seen) == len(set(seen)) == 25
    assert seen == list(reversed(created))
    fresh = await listing(client, limit=7)
    assert fresh["artifacts"][0]["artifact_id"] == newcomer
    assert [a["artifact_id"] for a in fresh["artifacts"][1:]] == seen[:6]


async def test_pagination_with_filters(client: Client) -> None:
    tagged = await _create_many(client, 9, tags=["keep"])
    await _create_many(client, 4)
    seen: list[str] = []
    cursor = None
    while True:
        args: dict[str, Any] = {"limit": 4, "tags": ["keep"]}
        if cursor:
            args["cursor"] = cursor
        page = await listing(client, **args)
        assert page["total"] == 9
        seen += [a["artifact_id"] for a in page["artifacts"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(tagged))


async def _walk(client: Client, **args: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = await listing(client, **args, **({"cursor": cursor} if cursor else {}))
        seen += [a["artifact_id"] for a in page["artifacts"]]
        cursor = page["next_cursor"]
        if not cursor:
            return seen


async def test_pagination_is_exact_when_creation_times_are_uneven(client: Client) -> None:
    """list looks for each page in a time window sized from the average density first, widening it when
    the window holds too few rows: bursts and gaps (here a pause, and a filter matching only the edges)
    must still give every artifact exactly once, in order."""
    early = await _create_many(client, 30, tags=["edge"])
    await anyio.sleep(0.5)
    middle = await _create_many(client, 30, tags=["middle"])
    late = await _create_many(client, 3, tags=["edge"])
    everything = early + middle + late
    assert await _walk(client, limit=1) == list(reversed(everything))
    assert await _walk(client, limit=4) == list(reversed(everything))
    assert await _walk(client, limit=1, tags=["edge"]) == list(reversed(early + late))
    assert await _walk(client, limit=2, tags=["middle"]) == list(reversed(middle))


# --- protocol surface -------------------------------------------------------------------------------


async def test_tool_annotations_and_schemas(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) >= TOOLS
    for name in ("list_artifacts", "get_artifact", "list_artifact_versions"):
        assert tools[name].annotations.read_only_hint is True, name
        assert tools[name].annotations.destructive_hint is False, name
    for name in ("create_artifact", "upload_artifact", "update_artifact", "delete_artifact"):
        assert tools[name].annotations.read_only_hint is False, name
    assert tools["delete_artifact"].annotations.destructive_hint is True
    assert tools["create_artifact"].annotations.destructive_hint is False
    for name in TOOLS:
        tool = tools[name]
        assert tool.output_schema is not None and tool.output_schema.get("type") == "object", name
        assert tool.output_schema.get("properties"), name
        assert tool.description, name
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema.get("additionalProperties") is False, name
    assert set(tools["create_artifact"].input_schema["required"]) == {"name", "content"}


async def test_results_carry_structured_content_and_resource_links(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}

    async def checked(name: str, args: dict[str, Any]) -> Any:
        result = await client.call_tool(name, args)
        assert not result.is_error, result.content
        assert result.structured_content is not None
        jsonschema.validate(result.structured_content, tools[name].output_schema)
        assert result.content[0].type == "text" and result.content[0].text
        return result

    def links(result: Any) -> list[str]:
        return [c.uri for c in result.content if c.type == "resource_link"]

    created = await checked("create_artifact", {"name": "a", "content": {"x": 1}})
    aid = created.structured_content["artifact_id"]
    assert links(created) == [f"artifact://{aid}"]
    link = next(c for c in created.content if c.type == "resource_link")
    assert link.name == "a" and link.mime_type == "application/json"
    uploaded = await checked("upload_artifact", {"name": "u", "data_base64": b64(PNG)})
    assert links(uploaded) == [f"artifact://{uploaded.structured_content['artifact_id']}"]
    got = await checked("get_artifact", {"artifact_id": aid})
    assert links(got) == [f"artifact://{aid}"]
    listed = await checked("list_artifacts", {})
    assert set(links(listed)) == {f"artifact://{a['artifact_id']}" for a in listed.structured_content["artifacts"]}
    assert len(links(listed)) == 2
    updated = await checked("update_artifact", {"artifact_id": aid, "content": {"x": 2}})
    new_id = updated.structured_content["artifact"]["artifact_id"]
    assert links(updated) == [f"artifact://{new_id}"]
    versions = await checked("list_artifact_versions", {"artifact_id": aid})
    assert links(versions) == [f"artifact://{aid}", f"artifact://{new_id}"]
    deleted = await checked("delete_artifact", {"artifact_id": aid})
    assert deleted.structured_content["remaining_versions"] == 0


async def test_results_are_identical_in_both_eras(app_runtime: tuple[MCPServer, Runtime]) -> None:
    app, _ = app_runtime
    async with Client(app, mode="auto") as modern:
        art = await create(modern, "shared", {"k": [1, 2]}, tags=["a"], wait_for_index=True)
        aid = art["artifact_id"]
        modern_results = [await modern.call_tool(n, a) for n, a in [
            ("get_artifact", {"artifact_id": aid}), ("list_artifacts", {}),
            ("list_artifact_versions", {"artifact_id": aid}),
        ]]
    async with Client(app, mode="legacy") as legacy:
        legacy_results = [await legacy.call_tool(n, a) for n, a in [
            ("get_artifact", {"artifact_id": aid}), ("list_artifacts", {}),
            ("list_artifact_versions", {"artifact_id": aid}),
        ]]
    for m, leg in zip(modern_results, legacy_results, strict=True):
        assert m.structured_content == leg.structured_content
        assert [c.model_dump() for c in m.content] == [c.model_dump() for c in leg.content]
        assert m.is_error == leg.is_error is False
