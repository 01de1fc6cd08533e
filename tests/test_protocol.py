"""Protocol requests server/protocol.py answers: artifact-id completion, legacy logging/setLevel, and
protocol errors (-32602) for unknown tools and prompts. Both eras, through a real in-process MCP session."""

from __future__ import annotations

import warnings

import pytest
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS, PromptReference, ResourceTemplateReference

from tests.conftest import call

pytestmark = pytest.mark.anyio


async def test_artifact_id_completes_from_the_callers_latest_artifacts(client: Client) -> None:
    ids = [(await call(client, "create_artifact", {"name": f"a{i}", "content": f"text {i}"}))["artifact_id"]
           for i in range(3)]
    ref = ResourceTemplateReference(uri="artifact://{artifact_id}/content")
    every = (await client.complete(ref, {"name": "artifact_id", "value": "art_"})).completion
    assert sorted(every.values) == sorted(ids)
    assert every.total == 3 and every.has_more is False
    one = (await client.complete(ref, {"name": "artifact_id", "value": ids[1][:12]})).completion
    assert ids[1] in one.values and all(v.startswith(ids[1][:12]) for v in one.values)
    none = (await client.complete(ref, {"name": "artifact_id", "value": "art_zzz"})).completion
    assert none.values == []
    # Anything else completes to nothing (no prompts here): an answer, not an error.
    other = await client.complete(PromptReference(name="summarize"), {"name": "topic", "value": "x"})
    assert other.completion.values == []


async def test_unknown_tool_is_a_protocol_error_naming_the_tools(client: Client) -> None:
    with pytest.raises(MCPError) as err:
        await client.call_tool("no_such_tool", {})
    assert err.value.error.code == INVALID_PARAMS
    assert "no_such_tool" in err.value.error.message and "create_artifact" in err.value.error.message
    # Known tools still work behind the check.
    assert (await call(client, "list_artifacts", {}))["total"] == 0


async def test_unknown_prompt_is_a_protocol_error(client: Client) -> None:
    with pytest.raises(MCPError) as err:
        await client.get_prompt("no_such_prompt")
    assert err.value.error.code == INVALID_PARAMS
    assert "no_such_prompt" in err.value.error.message


async def test_logging_set_level_is_accepted_by_legacy_clients(app_runtime) -> None:  # type: ignore[no-untyped-def]
    app, _ = app_runtime
    async with Client(app, mode="legacy") as client:
        assert client.server_capabilities.logging is not None
        assert client.server_capabilities.completions is not None
        with warnings.catch_warnings():  # the client method is deprecated (SEP-2577); the request is what we test
            warnings.simplefilter("ignore")
            assert await client.set_logging_level("warning") is not None
