"""The `sources` table on PostgreSQL: artifacts promoted to knowledge sources."""

from __future__ import annotations

from artifact_mcp.storage.repositories.postgres.connections import Connections
from artifact_mcp.storage.repositories.rows import SourceRow

_COLUMNS = ("source_id, root_artifact_id, artifact_id, source_name, description, org_id, workspace_id, "
            "namespace_id, created_at")


class PostgresSources:
    def __init__(self, db: Connections) -> None:
        self._db = db

    def get(self, source_id: str) -> SourceRow | None:
        row = self._db.one(f"SELECT {_COLUMNS} FROM sources WHERE source_id = %s", [source_id])
        return SourceRow(*row) if row else None

    def insert(self, row: SourceRow) -> None:
        self._db.run(
            f"INSERT INTO sources ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [row.source_id, row.root_artifact_id, row.artifact_id, row.source_name, row.description, row.org_id,
             row.workspace_id, row.namespace_id, row.created_at],
        )

    def delete_for_root(self, root_artifact_id: str) -> None:
        self._db.run("DELETE FROM sources WHERE root_artifact_id = %s", [root_artifact_id])
