"""Versioned schema migrations for the PostgreSQL catalog (each backend keeps its own list).

Append new migrations to the end; never edit one that has shipped. Each runs in its own transaction, under a
transaction-scoped advisory lock, and is recorded in `schema_migrations`: however many replicas start at once,
each migration is applied exactly once and no replica works on a half-migrated schema.

The schema is DuckDB's (repositories/duckdb/migrations.py) in PostgreSQL's types, with what scale-out adds:
- jobs carry `lease_until`: a claim holds a job until then, and a replica that died holding one lets it lapse,
  so another replica takes it over (`recover`) while a live replica's running jobs are left alone;
- chunk vectors are `bytea` (little-endian float32, `dim` x 4 bytes): the server has no pgvector, and the search
  cache loads them straight into numpy (`np.frombuffer`) — 1.5 KB a chunk, 154 MB at 100k;
- `chunk_changes` is the ordered change feed the replicas' search caches follow (added and removed chunks, by a
  sequence), and `tokens` holds API tokens, so every replica verifies and revokes the same ones.
- no `card` column: rows are read column by column, which costs PostgreSQL nothing like DuckDB's per-column price.
"""

from __future__ import annotations

# The advisory lock key of migrations: any constant, the same in every replica ("artifact-mcp" as 8 bytes).
MIGRATION_LOCK = int.from_bytes(b"artifact", "big") >> 1

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "the catalog: artifacts, settings, chunks, postings, jobs, sources, generations, idempotency keys, tokens",
        [
            """
            CREATE TABLE artifacts (
                artifact_id          text PRIMARY KEY,
                org_id               text NOT NULL,
                workspace_id         text NOT NULL,
                namespace_id         text NOT NULL,
                thread_id            text,
                name                 text NOT NULL,
                description          text,
                artifact_type        text NOT NULL,
                version              integer NOT NULL,
                root_artifact_id     text NOT NULL,
                is_latest            boolean NOT NULL,
                replaced_by_version  integer,
                content_kind         text,
                content_preview      text,
                content_text         text,
                file_name            text,
                mime_type            text NOT NULL,
                size_bytes           bigint NOT NULL,
                sha256               text,
                has_file             boolean NOT NULL,
                blob_key             text,
                summary              text,
                keywords             text[] NOT NULL,
                tags                 text[] NOT NULL,
                metadata             jsonb NOT NULL,
                source               text,
                source_execution_id  text,
                source_step_id       text,
                source_tool          text,
                scope                text NOT NULL,
                status               text NOT NULL,
                ttl_seconds          bigint,
                expires_at           timestamp,
                is_pinned            boolean NOT NULL,
                is_indexed           boolean NOT NULL,
                indexed_at           timestamp,
                index_collection     text,
                index_error          text,
                index_attempts       integer NOT NULL,
                embedding_model_id   text,
                chunk_count          integer NOT NULL,
                promoted_to_source_id text,
                created_by           text,
                created_at           timestamp NOT NULL,
                updated_at           timestamp NOT NULL,
                document_type        text,
                format               text,
                generation_error     text
            )
            """,
            # Unique: two replicas that both read version N and write N+1 cannot both succeed (the second is refused
            # as a conflict, repositories/postgres/artifacts.py), where one process's lock serializes them on DuckDB.
            "CREATE UNIQUE INDEX artifacts_root ON artifacts (root_artifact_id, version)",
            "CREATE INDEX artifacts_listing ON artifacts (org_id, workspace_id, namespace_id, created_at DESC, "
            "artifact_id DESC)",
            "CREATE INDEX artifacts_thread ON artifacts (org_id, workspace_id, namespace_id, thread_id, created_at)",
            "CREATE INDEX artifacts_blob ON artifacts (blob_key) WHERE blob_key IS NOT NULL",
            "CREATE INDEX artifacts_expiry ON artifacts (expires_at) WHERE expires_at IS NOT NULL",
            "CREATE TABLE kv (key text PRIMARY KEY, value bytea NOT NULL)",
            "CREATE SEQUENCE chunk_seq START 1",
            """
            CREATE TABLE chunks (
                seq              bigint PRIMARY KEY DEFAULT nextval('chunk_seq'),
                chunk_id         text NOT NULL,
                artifact_id      text NOT NULL,
                root_artifact_id text NOT NULL,
                version          integer NOT NULL,
                org_id           text NOT NULL,
                workspace_id     text NOT NULL,
                namespace_id     text NOT NULL,
                thread_id        text,
                artifact_type    text NOT NULL,
                tags             text[] NOT NULL,
                collection       text NOT NULL,
                expires_at       timestamp,
                chunk_index      integer NOT NULL,
                start_char       integer NOT NULL,
                end_char         integer NOT NULL,
                text             text NOT NULL,
                n_terms          integer NOT NULL,
                embedding        bytea
            )
            """,
            "CREATE INDEX chunks_artifact ON chunks (artifact_id)",
            "CREATE INDEX chunks_scope ON chunks (org_id, workspace_id, namespace_id)",
            "CREATE TABLE postings (term bigint NOT NULL, seq bigint NOT NULL, tf integer NOT NULL)",
            "CREATE INDEX postings_seq ON postings (seq)",
            # The change feed: one row per chunk write (the chunk seqs it added, the artifacts whose chunks it
            # removed, or whose chunks' filter columns it updated), ordered by `change_id`. A replica reads past
            # the last id it saw; a gap (an id taken by a transaction still open) is waited for, not skipped.
            """
            CREATE TABLE chunk_changes (
                change_id     bigserial PRIMARY KEY,
                added_seqs    bigint[] NOT NULL,
                removed_ids   text[] NOT NULL,
                updated_ids   text[] NOT NULL,
                cleared       boolean NOT NULL DEFAULT false,
                writer        text NOT NULL,
                at            timestamp NOT NULL DEFAULT (now() AT TIME ZONE 'utc')
            )
            """,
            """
            CREATE TABLE jobs (
                job_id        text PRIMARY KEY,
                artifact_id   text NOT NULL,
                type          text NOT NULL,
                status        text NOT NULL,
                attempts      integer NOT NULL,
                error         text,
                created_at    timestamp NOT NULL,
                started_at    timestamp,
                ended_at      timestamp,
                next_run_at   timestamp NOT NULL,
                lease_until   timestamp,
                claimed_by    text,
                org_id        text NOT NULL,
                workspace_id  text NOT NULL,
                namespace_id  text NOT NULL
            )
            """,
            "CREATE INDEX jobs_artifact ON jobs (artifact_id)",
            "CREATE INDEX jobs_due ON jobs (next_run_at) WHERE status IN ('queued', 'retrying')",
            """
            CREATE TABLE sources (
                source_id        text PRIMARY KEY,
                root_artifact_id text NOT NULL,
                artifact_id      text NOT NULL,
                source_name      text NOT NULL,
                description      text,
                org_id           text NOT NULL,
                workspace_id     text NOT NULL,
                namespace_id     text NOT NULL,
                created_at       timestamp NOT NULL
            )
            """,
            "CREATE INDEX sources_root ON sources (root_artifact_id)",
            """
            CREATE TABLE generations (
                artifact_id   text PRIMARY KEY,
                job_id        text NOT NULL,
                principal_id  text NOT NULL,
                request       jsonb NOT NULL,
                source_ids    text[] NOT NULL,
                draft         text,
                draft_model   text,
                created_at    timestamp NOT NULL
            )
            """,
            """
            CREATE TABLE idempotency_keys (
                principal_id  text NOT NULL,
                key           text NOT NULL,
                request_hash  text NOT NULL,
                artifact_id   text NOT NULL,
                job_id        text NOT NULL,
                created_at    timestamp NOT NULL,
                expires_at    timestamp NOT NULL,
                PRIMARY KEY (principal_id, key)
            )
            """,
            """
            CREATE TABLE tokens (
                token_id      text PRIMARY KEY,
                token_hash    text NOT NULL UNIQUE,
                record        jsonb NOT NULL,
                created_at    timestamp NOT NULL,
                revoked_at    timestamp
            )
            """,
        ],
    ),
]
