"""Versioned schema migrations for the DuckDB catalog.

Append new migrations to the end; never edit one that has shipped. Each runs in its own
transaction and is recorded in `schema_migrations`.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "artifacts table and key-value settings",
        [
            """
            CREATE TABLE artifacts (
                artifact_id          VARCHAR PRIMARY KEY,
                org_id               VARCHAR NOT NULL,
                workspace_id         VARCHAR NOT NULL,
                namespace_id         VARCHAR NOT NULL,
                thread_id            VARCHAR,
                name                 VARCHAR NOT NULL,
                description          VARCHAR,
                artifact_type        VARCHAR NOT NULL,
                version              INTEGER NOT NULL,
                root_artifact_id     VARCHAR NOT NULL,
                is_latest            BOOLEAN NOT NULL,
                replaced_by_version  INTEGER,
                -- `content` is derived: 'text' -> content_text, 'json' -> parsed content_text, NULL -> a file
                content_kind         VARCHAR,
                content_preview      VARCHAR,
                content_text         VARCHAR,
                file_name            VARCHAR,
                mime_type            VARCHAR NOT NULL,
                size_bytes           BIGINT NOT NULL,
                sha256               VARCHAR,
                has_file             BOOLEAN NOT NULL,
                blob_key             VARCHAR,
                summary              VARCHAR,
                keywords             VARCHAR[] NOT NULL,
                tags                 VARCHAR[] NOT NULL,
                metadata             JSON NOT NULL,
                source               VARCHAR,
                source_execution_id  VARCHAR,
                source_step_id       VARCHAR,
                source_tool          VARCHAR,
                scope                VARCHAR NOT NULL,
                status               VARCHAR NOT NULL,
                ttl_seconds          BIGINT,
                expires_at           TIMESTAMP,
                is_pinned            BOOLEAN NOT NULL,
                is_indexed           BOOLEAN NOT NULL,
                indexed_at           TIMESTAMP,
                index_collection     VARCHAR,
                index_error          VARCHAR,
                index_attempts       INTEGER NOT NULL,
                embedding_model_id   VARCHAR,
                chunk_count          INTEGER NOT NULL,
                promoted_to_source_id VARCHAR,
                created_by           VARCHAR,
                created_at           TIMESTAMP NOT NULL,
                updated_at           TIMESTAMP NOT NULL
            )
            """,
            "CREATE INDEX artifacts_root ON artifacts (root_artifact_id)",
            "CREATE TABLE kv (key VARCHAR PRIMARY KEY, value BLOB NOT NULL)",
        ],
    ),
]
