"""Versioned schema migrations for the DuckDB catalog (each backend keeps its own list).

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
    (
        2,
        "index: chunks, lexical postings, jobs, sources",
        [
            # One row per chunk of an artifact's *latest* version: replacing a version deletes the old chunks in
            # the same transaction. Scope, filters and effective expiry (NULL when pinned) are copied from the
            # artifact row so a search filters the chunks table alone; metadata updates keep them in sync.
            # The embedding column is added by the vector store, typed FLOAT[dim] for the configured model.
            "CREATE SEQUENCE chunk_seq START 1",
            """
            CREATE TABLE chunks (
                seq              BIGINT PRIMARY KEY DEFAULT nextval('chunk_seq'),
                chunk_id         VARCHAR NOT NULL,
                artifact_id      VARCHAR NOT NULL,
                root_artifact_id VARCHAR NOT NULL,
                version          INTEGER NOT NULL,
                org_id           VARCHAR NOT NULL,
                workspace_id     VARCHAR NOT NULL,
                namespace_id     VARCHAR NOT NULL,
                thread_id        VARCHAR,
                artifact_type    VARCHAR NOT NULL,
                tags             VARCHAR[] NOT NULL,
                collection       VARCHAR NOT NULL,
                expires_at       TIMESTAMP,
                chunk_index      INTEGER NOT NULL,
                start_char       INTEGER NOT NULL,
                end_char         INTEGER NOT NULL,
                text             VARCHAR NOT NULL,
                n_terms          INTEGER NOT NULL
            )
            """,
            "CREATE INDEX chunks_artifact ON chunks (artifact_id)",
            # BM25 postings: term hash (64-bit), chunk, term frequency. Appends only on write; no rebuild.
            "CREATE TABLE postings (term BIGINT NOT NULL, seq BIGINT NOT NULL, tf INTEGER NOT NULL)",
            """
            CREATE TABLE jobs (
                job_id        VARCHAR PRIMARY KEY,
                artifact_id   VARCHAR NOT NULL,
                type          VARCHAR NOT NULL,
                status        VARCHAR NOT NULL,
                attempts      INTEGER NOT NULL,
                error         VARCHAR,
                created_at    TIMESTAMP NOT NULL,
                started_at    TIMESTAMP,
                ended_at      TIMESTAMP,
                next_run_at   TIMESTAMP NOT NULL,
                org_id        VARCHAR NOT NULL,
                workspace_id  VARCHAR NOT NULL,
                namespace_id  VARCHAR NOT NULL
            )
            """,
            "CREATE INDEX jobs_artifact ON jobs (artifact_id)",
            """
            CREATE TABLE sources (
                source_id        VARCHAR PRIMARY KEY,
                root_artifact_id VARCHAR NOT NULL,
                artifact_id      VARCHAR NOT NULL,
                source_name      VARCHAR NOT NULL,
                description      VARCHAR,
                org_id           VARCHAR NOT NULL,
                workspace_id     VARCHAR NOT NULL,
                namespace_id     VARCHAR NOT NULL,
                created_at       TIMESTAMP NOT NULL
            )
            """,
        ],
    ),
    (
        3,
        "generated documents: artifact columns, generation requests, idempotency keys",
        [
            "ALTER TABLE artifacts ADD COLUMN document_type VARCHAR",
            "ALTER TABLE artifacts ADD COLUMN format VARCHAR",
            "ALTER TABLE artifacts ADD COLUMN generation_error VARCHAR",
            # What a generation job needs to (re)run after a restart: the request, the material it resolved to
            # when it was accepted (ids, in order) and the client model's draft when the client wrote one.
            """
            CREATE TABLE generations (
                artifact_id   VARCHAR PRIMARY KEY,
                job_id        VARCHAR NOT NULL,
                principal_id  VARCHAR NOT NULL,
                request       JSON NOT NULL,
                source_ids    VARCHAR[] NOT NULL,
                draft         VARCHAR,
                draft_model   VARCHAR,
                created_at    TIMESTAMP NOT NULL
            )
            """,
            # A retried generate_artifact with the same key returns the first artifact. Keys belong to the caller
            # (principal) and lapse after 24 h; request_hash tells a retry from a different request under a reused
            # key.
            """
            CREATE TABLE idempotency_keys (
                principal_id  VARCHAR NOT NULL,
                key           VARCHAR NOT NULL,
                request_hash  VARCHAR NOT NULL,
                artifact_id   VARCHAR NOT NULL,
                job_id        VARCHAR NOT NULL,
                created_at    TIMESTAMP NOT NULL,
                expires_at    TIMESTAMP NOT NULL,
                PRIMARY KEY (principal_id, key)
            )
            """,
        ],
    ),
    (
        4,
        "artifact cards: every column but content_text as one JSON text, what reads fetch",
        [
            "ALTER TABLE artifacts ADD COLUMN card VARCHAR",
            # metadata as its JSON text, timestamps as DuckDB prints them (ISO with a space): as the repository
            # writes cards (repositories/duckdb/artifacts.py).
            "UPDATE artifacts SET card = json_object("
                "'artifact_id', artifact_id, 'org_id', org_id, 'workspace_id', workspace_id, "
                "'namespace_id', namespace_id, 'thread_id', thread_id, 'name', name, 'description', description, "
                "'artifact_type', artifact_type, 'version', version, 'root_artifact_id', root_artifact_id, "
                "'is_latest', is_latest, 'replaced_by_version', replaced_by_version, "
                "'content_kind', content_kind, 'content_preview', content_preview, 'file_name', file_name, "
                "'mime_type', mime_type, 'size_bytes', size_bytes, 'sha256', sha256, 'has_file', has_file, "
                "'blob_key', blob_key, 'summary', summary, 'keywords', keywords, 'tags', tags, "
                "'metadata', metadata::VARCHAR, 'source', source, 'source_execution_id', source_execution_id, "
                "'source_step_id', source_step_id, 'source_tool', source_tool, 'scope', scope, 'status', status, "
                "'ttl_seconds', ttl_seconds, 'expires_at', expires_at, 'is_pinned', is_pinned, "
                "'is_indexed', is_indexed, 'indexed_at', indexed_at, 'index_collection', index_collection, "
                "'index_error', index_error, 'index_attempts', index_attempts, "
                "'embedding_model_id', embedding_model_id, 'chunk_count', chunk_count, "
                "'promoted_to_source_id', promoted_to_source_id, 'created_by', created_by, "
                "'created_at', created_at, 'updated_at', updated_at, 'document_type', document_type, "
                "'format', format, 'generation_error', generation_error "
                ")::VARCHAR",
        ],
    ),
    (
        5,
        "content_text stored uncompressed, so that reading one artifact's text does not decompress its neighbours'",
        # DuckDB compresses long strings with ZSTD a vector (up to 2,048 rows) at a time, so reading one row's
        # content_text decompressed them all: a get by id took 12.6 ms against 0.53 ms uncompressed, measured on
        # 1,560 artifacts of ~24 KB of text (bench/transfer.py's store); an export was 16 ms per version. The
        # cost is disk: that column 38 MB instead of 6 MB there. DuckDB cannot change a column's compression in
        # place, nor drop a column an index depends on: the index goes and comes back around the swap.
        [
            "DROP INDEX artifacts_root",
            "ALTER TABLE artifacts ADD COLUMN content_text_plain VARCHAR USING COMPRESSION uncompressed",
            "UPDATE artifacts SET content_text_plain = content_text",
            "ALTER TABLE artifacts DROP COLUMN content_text",
            "ALTER TABLE artifacts RENAME COLUMN content_text_plain TO content_text",
            "CREATE INDEX artifacts_root ON artifacts (root_artifact_id)",
        ],
    ),
]
