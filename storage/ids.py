"""Identifiers the store hands out, and the MCP resource URI of an artifact version."""

from __future__ import annotations

import uuid


def new_artifact_id() -> str:
    return f"art_{uuid.uuid4().hex}"


def new_job_id() -> str:
    return f"job_{uuid.uuid4().hex}"


def new_source_id() -> str:
    return f"src_{uuid.uuid4().hex}"


def artifact_uri(artifact_id: str) -> str:
    return f"artifact://{artifact_id}"
