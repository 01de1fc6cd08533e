"""Resources: paged resources/list, templates, reads with per-artifact mime types, change notifications."""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable
from typing import Any

import anyio
import mcp.types as types
import pytest
from mcp import Client, MCPError
from mcp.client.subscriptions import ResourcesListChanged, ResourceUpdated
from mcp.server import MCPServer

from artifact_mcp.server.app import build_app
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.server.settings import Settings
from tests.conftest import call

pytestmark = pytest.mark.anyio

PAGE = 4
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared settings with a small resources/list page."""
    return settings.model_copy(update={"resources_page_size": PAGE})


async def create(client: Client, name: str = "doc", content: Any = "hello", **extra: Any) -> dict[str, Any]:
    return await call(client, "create_artifact", {"name": name, "content": content, **extra})


async def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.01)


# --- resources/list and templates ----------------------------------------------------------------------


async def test_resources_list_pages_with_cursor(client: Client) -> None:
    created = [(await create(client, f"r{i}", f"body {i}", description=f"desc {i}"))["artifact_id"]
               for i in range(2 * PAGE + 2)]
    old = created[0]
    new = (await call(client, "update_artifact", {"artifact_id": old, "content": "v2"}))["artifact"]["artifact_id"]
    latest = [*created[1:], new]
    uris: list[str] = []
    pages: list[int] = []
    cursor = None
    while True:
        page = await client.list_resources(cursor=cursor)
        pages.append(len(page.resources))
        for r in page.resources:
            assert r.uri.startswith("artifact://art_")
            assert r.mime_type == "application/json"
            assert r.name.startswith("r")
            assert r.title == f"{r.name} (v{'2' if r.uri.endswith(new) else '1'})"
            assert r.description and r.description.startswith("desc")
            assert r.size is not None and r.size > 0
        uris += [r.uri for r in page.resources]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == [PAGE, PAGE, 2]
    assert len(uris) == len(set(uris))
    assert uris == [f"artifact://{a}" for a in reversed(latest)]  # newest first, latest versions only


async def test_resources_list_only_default_scope(client: Client) -> None:
    mine = await create(client, "mine")
    await create(client, "elsewhere", workspace_id="other")
    page = await client.list_resources()
    assert [r.uri for r in page.resources] == [mine["uri"]]
    assert page.next_cursor is None


async def test_resources_list_bad_cursor(client: Client) -> None:
    for i in range(PAGE + 1):
        await create(client, f"r{i}")
    good = (await client.list_resources()).next_cursor
    assert good
    for bad in ("garbage", good[:-3], good + "x", "e30.AAAA"):
        with pytest.raises(MCPError) as info:
            await client.list_resources(cursor=bad)
        assert info.value.error.code == types.INVALID_PARAMS
        assert "cursor" in info.value.error.message
    # a cursor from a filtered list_artifacts call belongs to another query
    other = await call(client, "list_artifacts", {"limit": 1, "artifact_types": ["document"]})
    with pytest.raises(MCPError) as info:
        await client.list_resources(cursor=other["next_cursor"])
    assert info.value.error.code == types.INVALID_PARAMS
    assert "different query" in info.value.error.message


async def test_resource_templates(client: Client) -> None:
    result = await client.list_resource_templates()
    templates = {t.uri_template: t for t in result.resource_templates}
    assert set(templates) == {"artifact://{artifact_id}", "artifact://{artifact_id}/content",
                              "artifact://{artifact_id}/versions"}
    assert templates["artifact://{artifact_id}"].mime_type == "application/json"
    assert templates["artifact://{artifact_id}/versions"].mime_type == "application/json"
    assert all(t.name and t.description for t in templates.values())


# --- resources/read -------------------------------------------------------------------------------------


async def test_read_metadata(client: Client) -> None:
    art = await create(client, "meta", "content here", tags=["a"], metadata={"k": [1]})
    result = await client.read_resource(art["uri"])
    (contents,) = result.contents
    assert isinstance(contents, types.TextResourceContents)
    assert contents.uri == art["uri"] and contents.mime_type == "application/json"
    data = json.loads(contents.text)
    assert data["artifact_id"] == art["artifact_id"] and data["name"] == "meta"
    assert data["tags"] == ["a"] and data["metadata"] == {"k": [1]}
    assert data["content"] is None  # metadata only
    assert data["content_preview"] == "content here"


async def test_read_text_content_with_mime(client: Client) -> None:
    text_art = await create(client, "t", "plain words")
    json_art = await create(client, "j", {"x": [1, 2]})
    md = await call(client, "upload_artifact", {"data_base64": base64.b64encode(b"# Hi\n").decode(),
                                                "file_name": "hi.md"})
    for art, mime, text in ((text_art, "text/plain", "plain words"), (json_art, "application/json", None),
                            (md, "text/markdown", "# Hi\n")):
        uri = f"{art['uri']}/content"
        (contents,) = (await client.read_resource(uri)).contents
        assert isinstance(contents, types.TextResourceContents)
        assert contents.uri == uri and contents.mime_type == mime
        if text is not None:
            assert contents.text == text
    (contents,) = (await client.read_resource(f"{json_art['uri']}/content")).contents
    assert json.loads(contents.text) == {"x": [1, 2]}


async def test_read_binary_content_as_blob(client: Client) -> None:
    art = await call(client, "upload_artifact", {"name": "img", "data_base64": base64.b64encode(PNG).decode()})
    uri = f"{art['uri']}/content"
    (contents,) = (await client.read_resource(uri)).contents
    assert isinstance(contents, types.BlobResourceContents)
    assert contents.mime_type == "image/png"
    assert base64.b64decode(contents.blob) == PNG
    declared = await call(client, "upload_artifact", {"name": "pdfish", "mime_type": "application/x-custom",
                                                      "data_base64": base64.b64encode(b"\x00\x01\x02").decode()})
    (contents,) = (await client.read_resource(f"{declared['uri']}/content")).contents
    assert isinstance(contents, types.BlobResourceContents)
    assert contents.mime_type == "application/x-custom"
    assert base64.b64decode(contents.blob) == b"\x00\x01\x02"


async def test_read_versions(client: Client) -> None:
    v1 = await create(client, "doc", "a")
    v2 = (await call(client, "update_artifact", {"artifact_id": v1["artifact_id"], "content": "b"}))["artifact"]
    for uri in (f"{v1['uri']}/versions", f"{v2['uri']}/versions"):
        (contents,) = (await client.read_resource(uri)).contents
        assert contents.mime_type == "application/json"
        versions = json.loads(contents.text)
        assert [v["artifact_id"] for v in versions] == [v1["artifact_id"], v2["artifact_id"]]
        assert [v["is_latest"] for v in versions] == [False, True]
    # the old version's content is still readable
    (old,) = (await client.read_resource(f"{v1['uri']}/content")).contents
    assert old.text == "a"


async def test_read_unknown_uri(client: Client) -> None:
    art = await create(client)
    missing = "artifact://art_" + "0" * 32
    for uri in ("artifact://nope", "artifact://art_123", f"{art['uri']}/other", "file:///etc/passwd",
                missing, f"{missing}/content", f"{missing}/versions", f"{art['uri']}/content/"):
        with pytest.raises(MCPError) as info:
            await client.read_resource(uri)
        assert info.value.error.code == types.INVALID_PARAMS, uri
        assert info.value.error.data == {"uri": uri}
        assert "not found" in info.value.error.message.lower()


async def test_read_deleted(client: Client) -> None:
    art = await create(client, "gone", "x")
    await call(client, "delete_artifact", {"artifact_id": art["artifact_id"]})
    with pytest.raises(MCPError) as info:
        await client.read_resource(f"{art['uri']}/content")
    assert info.value.error.code == types.INVALID_PARAMS


# --- notifications: 2025-11-25 (legacy) -----------------------------------------------------------------


async def test_legacy_capabilities(app_runtime: tuple[MCPServer, Runtime]) -> None:
    async with Client(app_runtime[0], mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        caps = client.server_capabilities
        assert caps.resources is not None
        assert caps.resources.subscribe is True
        assert caps.resources.list_changed is True
        assert caps.tools is not None


async def test_modern_capabilities(app_runtime: tuple[MCPServer, Runtime]) -> None:
    async with Client(app_runtime[0], mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        caps = client.server_capabilities
        assert caps.resources is not None
        assert caps.resources.subscribe is True and caps.resources.list_changed is True


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def __call__(self, message: Any) -> None:
        self.messages.append(message)

    def updated(self) -> list[str]:
        return [m.params.uri for m in self.messages if isinstance(m, types.ResourceUpdatedNotification)]

    def list_changed(self) -> int:
        return sum(isinstance(m, types.ResourceListChangedNotification) for m in self.messages)


async def test_legacy_subscribe_and_notifications(app_runtime: tuple[MCPServer, Runtime]) -> None:
    inbox = Inbox()
    async with Client(app_runtime[0], mode="legacy", message_handler=inbox) as client:
        art = await create(client, "watched", "v1")
        await wait_for(lambda: inbox.list_changed() == 1)
        other = await create(client, "unwatched", "x")
        await wait_for(lambda: inbox.list_changed() == 2)
        uri = art["uri"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource(uri)
        assert inbox.updated() == []

        # metadata-only update: updated for the subscribed uri, no list change
        await call(client, "update_artifact", {"artifact_id": art["artifact_id"], "tags": ["t"]})
        await wait_for(lambda: uri in inbox.updated())
        assert inbox.list_changed() == 2
        # an unwatched artifact's change is not sent
        await call(client, "update_artifact", {"artifact_id": other["artifact_id"], "tags": ["t"]})
        # content update: new version -> updated for the old uri and a list change
        n = len(inbox.updated())
        await call(client, "update_artifact", {"artifact_id": art["artifact_id"], "content": "v2"})
        await wait_for(lambda: len(inbox.updated()) > n and inbox.list_changed() == 3)
        assert set(inbox.updated()) == {uri}
        assert other["uri"] not in inbox.updated()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.unsubscribe_resource(uri)
        n = len(inbox.updated())
        await call(client, "update_artifact", {"artifact_id": art["artifact_id"], "tags": ["u"]})
        await call(client, "delete_artifact", {"artifact_id": art["artifact_id"]})
        await wait_for(lambda: inbox.list_changed() == 4)
        assert len(inbox.updated()) == n


async def test_legacy_subscribed_content_uri(app_runtime: tuple[MCPServer, Runtime]) -> None:
    inbox = Inbox()
    async with Client(app_runtime[0], mode="legacy", message_handler=inbox) as client:
        art = await create(client, "watched", "v1")
        content_uri = f"{art['uri']}/content"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource(content_uri)
        await call(client, "delete_artifact", {"artifact_id": art["artifact_id"]})
        await wait_for(lambda: content_uri in inbox.updated())


async def test_legacy_notifications_reach_other_sessions(app_runtime: tuple[MCPServer, Runtime]) -> None:
    watcher_inbox = Inbox()
    app = app_runtime[0]
    async with Client(app, mode="legacy", message_handler=watcher_inbox) as watcher, \
            Client(app, mode="legacy") as writer:
        art = await create(writer, "w", "x")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await watcher.subscribe_resource(art["uri"])
        await call(writer, "update_artifact", {"artifact_id": art["artifact_id"], "summary": "s"})
        await wait_for(lambda: art["uri"] in watcher_inbox.updated())
        assert watcher_inbox.list_changed() >= 1


# --- notifications: 2026-07-28 (subscriptions/listen) ---------------------------------------------------


async def test_modern_listen_receives_list_changed_and_updates(app_runtime: tuple[MCPServer, Runtime]) -> None:
    async with Client(app_runtime[0], mode="auto") as client:
        art = await create(client, "watched", "v1")
        other = await create(client, "other", "x")
        uri = art["uri"]
        async with client.listen(resources_list_changed=True, resource_subscriptions=[uri]) as sub:
            assert sub.honored is not None and sub.honored.resources_list_changed is True
            assert list(sub.honored.resource_subscriptions or []) == [uri]
            events: list[Any] = []

            async def collect() -> None:
                async for event in sub:
                    events.append(event)

            async with anyio.create_task_group() as tg:
                tg.start_soon(collect)
                await call(client, "update_artifact", {"artifact_id": art["artifact_id"], "tags": ["t"]})
                await wait_for(lambda: ResourceUpdated(uri=uri) in events)
                assert ResourcesListChanged() not in events
                await call(client, "update_artifact", {"artifact_id": other["artifact_id"], "tags": ["t"]})
                await create(client, "new", "n")
                await wait_for(lambda: ResourcesListChanged() in events)
                tg.cancel_scope.cancel()
        assert ResourceUpdated(uri=other["uri"]) not in events
        assert all(isinstance(e, ResourceUpdated | ResourcesListChanged) for e in events)


async def test_modern_listen_update_only(app_runtime: tuple[MCPServer, Runtime]) -> None:
    async with Client(app_runtime[0], mode="auto") as client:
        art = await create(client, "watched", "v1")
        async with client.listen(resource_subscriptions=[art["uri"]]) as sub:
            await call(client, "update_artifact", {"artifact_id": art["artifact_id"], "content": "v2"})
            with anyio.fail_after(3):
                event = await sub.__anext__()
            assert event == ResourceUpdated(uri=art["uri"])


async def test_legacy_client_cannot_listen(app_runtime: tuple[MCPServer, Runtime]) -> None:
    from mcp.client.subscriptions import ListenNotSupportedError

    async with Client(app_runtime[0], mode="legacy") as client:
        with pytest.raises(ListenNotSupportedError):
            async with client.listen(resources_list_changed=True):
                pass


async def test_content_over_the_resource_limit_points_to_a_download_link(settings: Settings) -> None:
    app, _ = build_app(settings.model_copy(update={"resource_max_bytes": 1000}))
    async with Client(app) as client:
        def upload(name: str, data: bytes) -> dict[str, Any]:
            return {"name": name, "data_base64": base64.b64encode(data).decode()}

        small = await call(client, "upload_artifact", upload("s", b"x" * 1000))
        big = await call(client, "upload_artifact", upload("b", b"y" * 1001))
        (contents,) = (await client.read_resource(f"{small['uri']}/content")).contents
        assert isinstance(contents, types.BlobResourceContents | types.TextResourceContents)
        with pytest.raises(MCPError, match=r"1001 bytes, over the 1000-byte limit.*get_artifact_download_url"):
            await client.read_resource(f"{big['uri']}/content")
