import pytest
from mcp import Client

from tests.conftest import call

pytestmark = pytest.mark.anyio


async def test_create_then_get(client: Client) -> None:
    created = await call(client, "create_artifact", {"name": "notes", "content": "hello"})
    got = await call(client, "get_artifact", {"artifact_id": created["artifact_id"]})
    assert got["content"] == "hello"
    assert got["version"] == 1
