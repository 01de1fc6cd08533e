"""Store configuration: plain settings models, importable without loading the store or its libraries
(so `artifact-mcp token …` and `--help` start fast)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from typing import Any

from pydantic import BaseModel, Field


class IndexConfig(BaseModel):
    """Everything that decides how artifacts are indexed and searched."""

    embedding_model: str = Field("default", description="'default' (all-MiniLM-L6-v2, offline), 'hf:<name>', "
                                 "'hash:<dim>' or 'class:<module>:<Class>'.")
    embedding_kwargs: dict[str, Any] = Field(default_factory=dict)
    model_cache_dir: str | None = Field(None, description="Where the default model's ONNX file is built and kept "
                                        "(default ~/.cache/artifact-mcp/models).")
    embed_batch_size: int = Field(32, ge=1, le=1024)
    # 128 tokens: MiniLM reads at most 256 word pieces, and a 256-token chunk with the artifact's name in front
    # is cut off a third of the time; on SciFact, 128/0 scored semantic nDCG@10 0.694 vs 0.669 for 256/0.
    # No overlap: the lexical side sums a version's chunk term counts into one document, which overlap would
    # double-count (-0.005).
    chunk_size: int = Field(128, ge=32, le=8192, description="Chunk size in tokens.")
    chunk_overlap: int = Field(0, ge=0, le=4096, description="Overlap between chunks in tokens.")
    # The artifact's name heads every chunk's embedded text (a chunk of a long report still "knows" which
    # report it is part of) and counts once in its lexical document.
    name_in_chunks: bool = True
    bm25_k1: float = Field(0.9, gt=0)
    bm25_b: float = Field(0.5, ge=0, le=1)
    fusion: str = Field("zscore", pattern="^(zscore|relative|rrf)$")
    fusion_alpha: float = Field(0.7, ge=0, le=1, description="Weight of the semantic side in score fusion.")
    rrf_k: int = Field(60, ge=1)
    candidates: int = Field(100, ge=10, le=2000, description="Candidates each retriever contributes to fusion.")
    # 64: the model embeds a batch's chunks sorted by length, so a larger batch pads less. 600 SciFact abstracts
    # embedded 76.4 chunks/s in batches of 16 artifacts, 85.1 in batches of 64 (all at once: 85.3). The owner
    # commits them 16 at a time (ownership/workers.py), so a writer waits no longer for the store lock.
    job_batch: int = Field(64, ge=1, le=256, description="Index jobs claimed (and embedded) together.")
    max_attempts: int = Field(5, ge=1, le=50)
    retry_backoff_seconds: float = Field(1.0, gt=0)

    @property
    def model_id(self) -> str:
        from artifact_mcp.storage.index.embeddings import model_id_for  # loads numpy: only when the store opens

        return model_id_for(self.embedding_model)


class StoreConfig(BaseModel):
    catalog_path: str
    blob_url: str
    max_upload_bytes: int = 100 * 1024 * 1024
    memory_limit: str | None = None
    # One DuckDB thread: the catalog's queries are small, and a second thread costs more to wake than it saves
    # (create p50 at 100k rows: ~3 ms with one, ~5 ms with two). Large scans can raise it for their own query.
    threads: int = 1
    blob_fsync: bool = True
    sweep_interval_seconds: float = 60.0
    gc_interval_seconds: float = 3600.0
    job_lease_seconds: float = 30.0  # a shared catalog's job claims (repositories/postgres/jobs.py)
    takeover_timeout_seconds: float = 60.0
    # A short-lived owner (a CLI command) runs no background work: index jobs it would claim and cut short at exit
    # wait for the next server instead, and a query loads the embedding model itself.
    background_work: bool = True
    index: IndexConfig = IndexConfig()

    @property
    def is_postgres(self) -> bool:
        """A PostgreSQL URL: the catalog is shared by the database itself, with no owning process."""
        return self.catalog_path.startswith(("postgresql://", "postgres://"))

    @property
    def shared(self) -> bool:
        """Whether processes on this machine share the catalog through one owner (an embedded DuckDB file). A
        PostgreSQL catalog is opened by every process itself: the database settles what they do at once."""
        return self.catalog_path != ":memory:" and not self.is_postgres

    @property
    def lock_path(self) -> str:
        return os.path.abspath(self.catalog_path) + ".lock"

    @property
    def socket_path(self) -> str:
        path = os.path.abspath(self.catalog_path) + ".sock"
        if len(path.encode()) < 100:
            return path
        # AF_UNIX paths are limited to ~108 bytes: fall back to a short, per-store name in /tmp.
        digest = hashlib.sha256(path.encode()).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), f"artifact-mcp-{os.getuid()}-{digest}.sock")
