"""server.json, the MCP registry entry (schema 2025-12-11): valid against the registry's rules for what it uses,
and true to the project: the package's name, version and command, and environment variables that exist in
server/settings.py with their real defaults. No network: the rules are restated here as a JSON Schema."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from jsonschema import Draft7Validator

from artifact_mcp.server.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SERVER_JSON = json.loads((REPO / "server.json").read_text())
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

# The registry schema's constraints on the fields a stdio PyPI package uses (server.schema.json, 2025-12-11:
# ServerDetail, Package, StdioTransport, PositionalArgument, KeyValueInput/Input).
_INPUT = {
    "description": {"type": "string"}, "isRequired": {"type": "boolean"}, "isSecret": {"type": "boolean"},
    "format": {"enum": ["string", "number", "boolean", "filepath"]}, "value": {"type": "string"},
    "default": {"type": "string"}, "placeholder": {"type": "string"},
    "choices": {"type": "array", "items": {"type": "string"}},
}
REGISTRY_RULES = {
    "type": "object",
    "required": ["$schema", "name", "description", "version", "packages"],
    "properties": {
        "$schema": {"const": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"},
        "name": {"type": "string", "pattern": r"^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$", "minLength": 3, "maxLength": 200},
        "description": {"type": "string", "minLength": 1, "maxLength": 100},
        "version": {"type": "string", "maxLength": 255, "not": {"pattern": r"[\^~><=*]|\.x$"}},
        "packages": {"type": "array", "minItems": 1, "items": {
            "type": "object", "additionalProperties": False,
            "required": ["registryType", "identifier", "version", "transport"],
            "properties": {
                "registryType": {"enum": ["npm", "pypi", "oci", "nuget", "mcpb"]},
                "registryBaseUrl": {"type": "string", "format": "uri"},
                "identifier": {"type": "string"},
                "version": {"type": "string", "minLength": 1, "not": {"const": "latest"}},
                "runtimeHint": {"type": "string"},
                "transport": {"type": "object", "required": ["type"], "properties": {"type": {"const": "stdio"}}},
                "packageArguments": {"type": "array", "items": {
                    "type": "object", "required": ["type", "value"],
                    "properties": {"type": {"const": "positional"}, "valueHint": {"type": "string"}, **_INPUT}}},
                "environmentVariables": {"type": "array", "items": {
                    "type": "object", "required": ["name", "description"], "additionalProperties": False,
                    "properties": {"name": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"}, **_INPUT}}},
            },
        }},
    },
}


def test_server_json_follows_the_registry_schema() -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in Draft7Validator(REGISTRY_RULES).iter_errors(SERVER_JSON)]
    assert not errors, errors


def test_server_json_is_this_package() -> None:
    project = PYPROJECT["project"]
    (package,) = SERVER_JSON["packages"]
    assert package["registryType"] == "pypi" and package["identifier"] == project["name"]
    assert SERVER_JSON["version"] == package["version"] == project["version"]
    # `uvx artifact-mcp serve`: the package's console script, with the stdio subcommand.
    assert package["runtimeHint"] == "uvx" and project["scripts"][package["identifier"]]
    assert [a["value"] for a in package["packageArguments"]] == ["serve"]
    # The registry proves PyPI ownership by this marker in the package description (the README).
    assert f"mcp-name: {SERVER_JSON['name']}" in (REPO / "README.md").read_text()


def test_environment_variables_are_real_settings() -> None:
    (package,) = SERVER_JSON["packages"]
    fields = Settings.model_fields
    prefix = Settings.model_config["env_prefix"]
    for var in package["environmentVariables"]:
        field = var["name"].removeprefix(prefix).lower()
        assert var["name"].startswith(prefix) and field in fields, f"{var['name']} is no setting"
        assert var["isRequired"] is False  # every setting has a default
        default = fields[field].get_default(call_default_factory=False)
        if "default" in var:
            assert var["default"] == str(default), var["name"]
        if "choices" in var:
            assert set(var["choices"]) == set(fields[field].annotation.__args__), var["name"]
        if var.get("format") == "number":
            assert re.fullmatch(r"\d+", var.get("default", "0"))
    named = {v["name"] for v in package["environmentVariables"]}
    # The settings a desktop install is configured with are all documented.
    for field in ("data_dir", "blob_url", "org_id", "workspace_id", "namespace_id", "allowed_roots",
                  "embedding_model", "log_level"):
        assert f"{prefix}{field.upper()}" in named
