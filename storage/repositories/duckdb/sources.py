"""The `sources` table on DuckDB: artifacts promoted to knowledge sources."""

from __future__ import annotations

import duckdb

from artifact_mcp.storage.repositories.rows import SourceRow

_COLUMNS = ("source_id, root_artifact_id, artifact_id, source_name, description, org_id, workspace_id, "
            "namespace_id, created_at")


class DuckDBSources:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con

    def get(self, source_id: str) -> SourceRow | None:
        row = self._con.execute(f"SELECT {_COLUMNS} FROM sources WHERE source_id = ?", [source_id]).fetchone()
        return SourceRow(*row) if row else None

    def insert(self, row: SourceRow) -> None:
        self._con.execute(
            f"INSERT INTO sources ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [row.source_id, row.root_artifact_id, row.artifact_id, row.source_name, row.description, row.org_id,
             row.workspace_id, row.namespace_id, row.created_at],
        )

    def delete_for_root(self, root_artifact_id: str) -> None:
        self._con.execute("DELETE FROM sources WHERE root_artifact_id = ?", [root_artifact_id])
