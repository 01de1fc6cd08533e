"""The `generations` table on PostgreSQL: what a generation job needs to (re)run after a restart."""

from __future__ import annotations

import json

from artifact_mcp.storage.repositories.postgres.connections import Connections
from artifact_mcp.storage.repositories.rows import GenerationRow

_COLUMNS = "artifact_id, job_id, principal_id, request, source_ids, draft, draft_model, created_at"


class PostgresGenerations:
    def __init__(self, db: Connections) -> None:
        self._db = db

    def insert(self, row: GenerationRow) -> None:
        self._db.run(
            f"INSERT INTO generations ({_COLUMNS}) VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s)",
            [row.artifact_id, row.job_id, row.principal_id,
             row.request if isinstance(row.request, str) else json.dumps(row.request), list(row.source_ids), row.draft,
             row.draft_model, row.created_at],
        )

    def get(self, artifact_id: str) -> GenerationRow | None:
        # The request is kept as the JSON text the caller gave (DuckDB's JSON column reads back as text too).
        row = self._db.one(
            "SELECT artifact_id, job_id, principal_id, request::text, source_ids, draft, draft_model, created_at "
            "FROM generations WHERE artifact_id = %s", [artifact_id])
        if row is None:
            return None
        gen = GenerationRow(*row)
        gen.source_ids = list(gen.source_ids)
        return gen

    def delete_for(self, artifact_ids: list[str]) -> None:
        self._db.run("DELETE FROM generations WHERE artifact_id = ANY(%s)", [list(artifact_ids)])

