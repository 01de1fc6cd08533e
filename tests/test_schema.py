"""Output schemas are flattened for cheap client-side validation, without changing what they accept."""

from __future__ import annotations

from typing import Literal

import jsonschema
import pytest
from mcp import Client
from pydantic import BaseModel

from artifact_mcp.tools.schema import compact_schema
from tests.conftest import call

pytestmark = pytest.mark.anyio


class Inner(BaseModel):
    n: int | None = None
    kind: Literal["a", "b"] | None = None


class Outer(BaseModel):
    name: str | None
    items: list[Inner]
    one: Inner | None = None


def test_compact_schema_is_equivalent() -> None:
    original = Outer.model_json_schema()
    compact = compact_schema(original)
    text = str(compact)
    assert "$ref" not in text and "$defs" not in text
    n = compact["properties"]["items"]["items"]["properties"]["n"]
    assert n["type"] == ["integer", "null"] and "anyOf" not in n
    # An enum cannot take null by widening `type`: that anyOf must stay.
    assert "anyOf" in compact["properties"]["items"]["items"]["properties"]["kind"]
    good = [
        {"name": None, "items": []},
        {"name": "x", "items": [{"n": None, "kind": "a"}, {"n": 3}], "one": None},
        {"name": "x", "items": [], "one": {"kind": None}},
    ]
    bad = [
        {"name": 3, "items": []},
        {"name": "x", "items": [{"n": "3"}]},
        {"name": "x", "items": [{"kind": "c"}]},
        {"name": "x", "items": [], "one": {"n": 1.5}},
        {"items": []},
    ]
    for schema in (original, compact):
        for value in good:
            jsonschema.validate(value, schema)
        for value in bad:
            with pytest.raises(jsonschema.ValidationError):
                jsonschema.validate(value, schema)


def test_recursive_reference_is_refused() -> None:
    schema = {"$ref": "#/$defs/Node", "$defs": {"Node": {"type": "object", "properties": {
        "next": {"$ref": "#/$defs/Node"}}}}}
    with pytest.raises(ValueError, match="recursive"):
        compact_schema(schema)


async def test_published_output_schemas_are_flat_and_hold(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    for tool in tools.values():
        assert tool.output_schema is not None
        assert "$ref" not in str(tool.output_schema), tool.name
    created = await call(client, "create_artifact", {"name": "n", "content": "x", "ttl_seconds": 60})
    page = await call(client, "list_artifacts", {})
    # Nullable fields really are null here, and the flattened schema accepts them.
    assert created["thread_id"] is None and created["expires_at"] is not None
    jsonschema.validate(created, tools["create_artifact"].output_schema)
    jsonschema.validate(page, tools["list_artifacts"].output_schema)
    broken = {**created, "version": "1"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, tools["get_artifact"].output_schema)
