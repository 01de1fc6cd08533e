"""The `generations` table on DuckDB: what a generation job needs to (re)run after a restart."""

from __future__ import annotations

import duckdb

from artifact_mcp.storage.repositories.rows import GenerationRow

_COLUMNS = "artifact_id, job_id, principal_id, request, source_ids, draft, draft_model, created_at"


class DuckDBGenerations:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def insert(self, row: GenerationRow) -> None:
        self._con.execute(
            f"INSERT INTO generations ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [row.artifact_id, row.job_id, row.principal_id, row.request, row.source_ids, row.draft, row.draft_model,
             row.created_at],
        )

    def get(self, artifact_id: str) -> GenerationRow | None:
        row = self._con.execute(f"SELECT {_COLUMNS} FROM generations WHERE artifact_id = ?",
                                [artifact_id]).fetchone()
        if row is None:
            return None
        gen = GenerationRow(*row)
        gen.source_ids = list(gen.source_ids)
        return gen

    def delete_for(self, artifact_ids: list[str]) -> None:
        self._con.execute("DELETE FROM generations WHERE list_contains(?, artifact_id)", [artifact_ids])
