"""ArtifactStore: the synchronous core behind every tool (repositories + blobs, one lock, one writer).

A thin façade: it opens the services over one set of repositories, holds the one store lock they share, and
registers each operation other processes may call (`@operation`, storage/ownership/registry.py). Callers reach
it through `storage.ownership.client.StoreClient`, which runs these methods on a worker thread in the owning
process, or forwards them over a local socket from any other process.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from artifact_mcp.storage.archive import ArchivedVersion, ImportedFile, RestoreOutcome, VersionIdentity
from artifact_mcp.storage.blobs import BlobStore
from artifact_mcp.storage.config import StoreConfig
from artifact_mcp.storage.errors import ModelNotPrepared
from artifact_mcp.storage.fair_lock import FairRLock
from artifact_mcp.storage.generate.models import Draft, GenerateRequest, GenerateResult, Material
from artifact_mcp.storage.links import DownloadLink, DownloadTarget
from artifact_mcp.storage.models import (
    DEFAULT_MAX_CHARS,
    Artifact,
    ArtifactPage,
    ArtifactPatch,
    ChangeEvent,
    ContentBody,
    DeleteResult,
    FilePatch,
    Job,
    JobList,
    ListQuery,
    NewArtifact,
    NewFileArtifact,
    PromoteRequest,
    PromoteResult,
    QueryRequest,
    QueryResult,
    Scope,
    StagedBlob,
    SummaryPage,
    ThreadSummary,
    UpdateResult,
)
from artifact_mcp.storage.ownership.registry import operation
from artifact_mcp.storage.stats import StoreStats

# Importing this module registers the operations (their signatures use only the models above): every server
# process imports it at start, before it answers `initialize`. What opening a store needs (the catalog driver,
# numpy, the embedding runtime: ~0.5 s of imports) is imported by `open_store` / `ArtifactStore()` only,
# in the process that owns the store, on a worker thread. tests/test_startup.py checks that this stays so.
if TYPE_CHECKING:
    from artifact_mcp.storage.index.pipeline import IndexConfig, Indexer, Prepared
    from artifact_mcp.storage.repositories.protocols import Repositories
    from artifact_mcp.storage.services.generation import GenerationOutcome, GenerationTask
    from artifact_mcp.storage.services.indexing import IndexTask

log = logging.getLogger(__name__)


def open_store(cfg: StoreConfig) -> ArtifactStore:
    if cfg.background_work:  # an owner that warms up for queries (not a CLI command's short-lived one)
        from artifact_mcp.storage.index.onnx.session import preload

        # Before the imports below (DuckDB, numpy, ~0.3 s): the query model's session opens beside them.
        preload(cfg.index.embedding_model, cfg.index.model_cache_dir)
    from artifact_mcp.storage.index.embeddings import MINILM_ID, known_dim
    from artifact_mcp.storage.index.model_spec import sticky_default
    from artifact_mcp.storage.index.pipeline import Indexer

    index = cfg.index
    indexer = Indexer(index)
    dim = known_dim(index.embedding_model) or indexer.model.dim
    db = _open_catalog(cfg, dim)
    has_fp32_index = db.settings.get("embedding_model_id") == MINILM_ID and db.chunks.count() > 0
    spec = sticky_default(index.embedding_model, has_fp32_index)
    if spec != index.embedding_model:
        from artifact_mcp.storage.index.onnx.session import discard

        log.info("this store's index was built by the fp32 default model: it keeps it (set the embedding model to "
                 "'default:int8' to re-index with today's faster default)")
        discard(index.embedding_model, index.model_cache_dir)
        index = index.model_copy(update={"embedding_model": spec})
        indexer = Indexer(index)
    blobs = BlobStore(cfg.blob_url, max_bytes=cfg.max_upload_bytes, fsync=cfg.blob_fsync, shared=cfg.is_postgres)
    return ArtifactStore(db, blobs, max_content_bytes=cfg.max_upload_bytes, indexer=indexer)


def _open_catalog(cfg: StoreConfig, dim: int) -> Repositories:
    db: Repositories
    if cfg.is_postgres:
        from artifact_mcp.storage.repositories.postgres.database import PostgresRepositories

        db = PostgresRepositories(cfg.catalog_path, embedding_dim=dim, job_lease_seconds=cfg.job_lease_seconds)
    else:
        from artifact_mcp.storage.repositories.duckdb.database import DuckDBRepositories

        db = DuckDBRepositories(cfg.catalog_path, embedding_dim=dim, memory_limit=cfg.memory_limit,
                                threads=cfg.threads)
    return db


class ArtifactStore:
    def __init__(self, db: Repositories, blobs: BlobStore, *, max_content_bytes: int,
                 index: IndexConfig | None = None, indexer: Indexer | None = None) -> None:
        from artifact_mcp.storage.cursor import CursorCodec
        from artifact_mcp.storage.index.pipeline import IndexConfig, Indexer
        from artifact_mcp.storage.index.search_cache import SearchCache
        from artifact_mcp.storage.jobs import RetryPolicy
        from artifact_mcp.storage.links import LinkSigner
        from artifact_mcp.storage.services.context import StoreContext
        from artifact_mcp.storage.services.following import FollowingService
        from artifact_mcp.storage.services.generation import GenerationService
        from artifact_mcp.storage.services.housekeeping import HousekeepingService
        from artifact_mcp.storage.services.indexing import IndexingService
        from artifact_mcp.storage.services.links import LinkService
        from artifact_mcp.storage.services.reads import ReadService
        from artifact_mcp.storage.services.recall import RecallService
        from artifact_mcp.storage.services.transfer import TransferService
        from artifact_mcp.storage.services.writes import WriteService

        self.db = db
        self.blobs = blobs
        self.max_content_bytes = max_content_bytes
        self.indexer = indexer or Indexer(index or IndexConfig())
        self._lock = FairRLock()
        self._warm = threading.Event()  # set once warm_up has loaded what a query needs
        cfg = self.indexer.config
        retry = RetryPolicy(max_attempts=cfg.max_attempts, backoff_seconds=cfg.retry_backoff_seconds)
        ctx = StoreContext(db=db, blobs=blobs, lock=self._lock, max_content_bytes=max_content_bytes)
        with self._lock:
            cursors = CursorCodec(db.settings.secret("cursor_secret"))
            signer = LinkSigner(db.settings.secret("download_secret"))
        self.cache = SearchCache(db.chunks.dim)
        self.indexing = IndexingService(ctx, self.indexer, self.cache, retry)
        self.indexing.match_model()
        self._writes = WriteService(ctx, self.indexing)
        self._reads = ReadService(ctx, cursors)
        self._links = LinkService(ctx, signer)
        self._recall = RecallService(ctx, self.indexer, self.cache)
        self._housekeeping = HousekeepingService(ctx, self._writes)
        self._transfer = TransferService(ctx, self.indexing)
        self.generation = GenerationService(ctx, self._recall, retry)
        self.following = FollowingService(ctx, self.cache, db.feed) if db.feed is not None else None

    @property
    def con(self) -> Any:
        """The backend's connection (tests and benchmarks inspect the catalog through it; hold `_lock`)."""
        return getattr(self.db, "con", None)

    def close(self) -> None:
        self._recall.close()
        with self._lock:
            self.db.close()

    # --- writes ----------------------------------------------------------------------------------

    @operation(retryable=True, enqueues=True, fresh_id="artifact_id")  # retried with its pre-chosen id
    def create(self, scope: Scope, new: NewArtifact, artifact_id: str | None = None) -> tuple[Artifact, ChangeEvent]:
        """Create version 1. A caller-chosen `artifact_id` makes a retried create return the same artifact."""
        return self._writes.create(scope, new, artifact_id)

    @operation(retryable=True, enqueues=True, public=False)
    def create_from_blob(self, scope: Scope, new: NewFileArtifact, staged: StagedBlob,
                         artifact_id: str | None = None) -> tuple[Artifact, ChangeEvent]:
        """Create version 1 from bytes already streamed to the blob store (`BlobStore.stage_stream`): neither this
        process nor the socket between processes ever holds them whole. Retried with the same `artifact_id`, it
        returns the same artifact."""
        return self._writes.create_from_blob(scope, new, staged, artifact_id)

    @operation(enqueues=True)
    def update(self, scope: Scope, artifact_id: str, patch: ArtifactPatch) -> tuple[UpdateResult, ChangeEvent]:
        """Change fields in place, or (new content) make a new version."""
        return self._writes.update(scope, artifact_id, patch)

    @operation(enqueues=True, public=False)
    def update_from_blob(self, scope: Scope, artifact_id: str, patch: FilePatch,
                         staged: StagedBlob) -> tuple[UpdateResult, ChangeEvent]:
        """A new version from bytes already streamed to the blob store (`BlobStore.stage_stream`), with the patch's
        field changes."""
        return self._writes.update_from_blob(scope, artifact_id, patch, staged)

    @operation(enqueues=True)
    def delete(self, scope: Scope, artifact_id: str, all_versions: bool = True) -> tuple[DeleteResult, ChangeEvent]:
        return self._writes.delete(scope, artifact_id, all_versions)

    # --- reads -----------------------------------------------------------------------------------

    @operation(retryable=True)
    def get(self, scope: Scope, artifact_id: str, include_expired: bool = False,
            max_chars: int = DEFAULT_MAX_CHARS) -> Artifact:
        return self._reads.get(scope, artifact_id, include_expired, max_chars)

    @operation(retryable=True)
    def list(self, scope: Scope, query: ListQuery) -> ArtifactPage:
        return self._reads.list(scope, query)

    @operation(retryable=True)
    def list_summaries(self, scope: Scope, query: ListQuery) -> SummaryPage:
        return self._reads.list_summaries(scope, query)

    @operation(retryable=True)
    def versions(self, scope: Scope, artifact_id: str) -> list[Artifact]:
        return self._reads.versions(scope, artifact_id)

    @operation(retryable=True)
    def threads(self, scope: Scope, limit: int = 200) -> list[ThreadSummary]:
        return self._reads.threads(scope, limit)

    @operation(retryable=True)
    def read_content(self, scope: Scope, artifact_id: str) -> ContentBody:
        return self._reads.read_content(scope, artifact_id)

    @operation(retryable=True)
    def stats(self, scope: Scope) -> StoreStats:
        """The scope's artifact counts, storage and background-job backlog."""
        return self._reads.stats(scope)

    @operation(retryable=True)
    def locate(self, artifact_id: str) -> Scope | None:
        """The scope an artifact id lives in (for resource URIs, which carry no scope)."""
        return self._reads.locate(artifact_id)

    # --- recall ----------------------------------------------------------------------------------

    @operation(retryable=True)
    def query(self, scope: Scope, req: QueryRequest) -> QueryResult:
        return self._recall.query(scope, req)

    @operation(retryable=True)  # idempotent
    def promote(self, scope: Scope, artifact_id: str, req: PromoteRequest) -> tuple[PromoteResult, ChangeEvent]:
        return self._recall.promote(scope, artifact_id, req)

    @operation(retryable=True)
    def is_warm(self) -> bool:
        """Whether what a query needs is loaded (warm_up): a query embeds its text now instead of waiting for the
        model to load."""
        return self._warm.is_set()

    @operation(retryable=True)
    def model_available(self) -> bool:
        """Whether the embedding model's weights are on this machine (index jobs wait for them otherwise)."""
        return self.indexer.model_available()

    @operation(retryable=True)
    def list_jobs(self, scope: Scope, artifact_id: str) -> JobList:
        return self._recall.list_jobs(scope, artifact_id)

    # --- import, export, restore ---------------------------------------------------------------------

    @operation(retryable=True)
    def imported(self, scope: Scope, thread_id: str | None, paths: list[str]) -> list[ImportedFile]:
        """The latest versions an import made from these files (by absolute path) in the scope and thread."""
        return self._transfer.imported(scope, thread_id, paths)

    @operation(retryable=True)
    def archive_ids(self, scope: Scope) -> list[str]:
        """Every version id in the scope, oldest first: an export's consistent cut (versions are immutable)."""
        return self._transfer.archive_ids(scope)

    @operation(retryable=True)
    def archive_versions(self, scope: Scope, artifact_ids: list[str]) -> list[ArchivedVersion]:
        return self._transfer.archive_versions(scope, artifact_ids)

    @operation(retryable=True)
    def present_versions(self, artifact_ids: list[str]) -> list[VersionIdentity]:
        return self._transfer.present(artifact_ids)

    @operation(retryable=True, enqueues=True, public=False)  # idempotent: a repeat finds the version present
    def restore_version(self, version: ArchivedVersion,
                        staged: StagedBlob | None) -> tuple[RestoreOutcome, ChangeEvent]:
        """Insert an archived version with its own ids (bytes already staged, hash checked) and re-link its
        artifact's versions; an identical version already present is left as it is."""
        return self._transfer.restore_version(version, staged)
    @operation(enqueues=True)
    def retry_index(self, scope: Scope, artifact_id: str) -> tuple[Job, ChangeEvent]:
        """Re-run a version's failed index job (a new job, fresh attempts)."""
        return self.indexing.retry_failed(scope, artifact_id)

    # --- download links --------------------------------------------------------------------------

    @operation(retryable=True)
    def download_link(self, scope: Scope, artifact_id: str, expires_in: int, token_id: str | None,
                      issued_at: datetime | None = None) -> DownloadLink:
        """Sign a link to this artifact version, valid `expires_in` seconds from `issued_at` (default now; only a
        past clock is honoured, so a link can be made to expire earlier, never later)."""
        return self._links.download_link(scope, artifact_id, expires_in, token_id, issued_at)

    @operation(retryable=True)
    def resolve_download(self, token: str) -> DownloadTarget:
        """What a link serves, once its signature and expiry check out and its artifact version still exists (and
        has not expired); Forbidden with one generic message otherwise."""
        return self._links.resolve_download(token)

    @operation(retryable=True)
    def download_target(self, scope: Scope, artifact_id: str) -> DownloadTarget:
        """What a download of this version serves (for routes that authenticate the caller themselves): the bytes
        are then streamed from the blob store, never loaded whole."""
        return self._links.download_target(scope, artifact_id)

    # --- generated documents ---------------------------------------------------------------------

    # A retry carries the same pre-chosen artifact id, so it returns the first acceptance.
    @operation(retryable=True, generates=True, fresh_id="artifact_id")
    def generate(self, scope: Scope, principal_id: str, req: GenerateRequest, artifact_id: str,
                 draft: Draft | None = None, created_by: str | None = None
                 ) -> GenerateResult | tuple[GenerateResult, ChangeEvent]:
        """Accept a generation request: the new artifact (status `processing`) and its queued job, or, for a
        repeated idempotency key (or a retried call with the same pre-chosen `artifact_id`), the first ones."""
        return self.generation.generate(scope, principal_id, req, artifact_id, draft, created_by)

    @operation(retryable=True)
    def find_generation(self, scope: Scope, principal_id: str, req: GenerateRequest) -> GenerateResult | None:
        """What `generate` would replay for this idempotency key (None: it would accept a new request). Raises
        Conflict when the key was used for a different request."""
        return self.generation.find_generation(scope, principal_id, req)

    @operation(retryable=True)
    def generation_material(self, scope: Scope, req: GenerateRequest) -> Material:
        """The material as the client's model will read it: each artifact's text, cut to share a prompt budget."""
        return self.generation.generation_material(scope, req)

    # --- the owner's background work (called in the owning process only) ----------------------------

    def claim_index_jobs(self, limit: int) -> list[IndexTask]:
        return self.indexing.claim_index_jobs(limit)

    def prepare_index(self, tasks: list[IndexTask]) -> list[Prepared]:
        return self.indexing.prepare_index(tasks)

    def commit_index(self, tasks: list[IndexTask], prepared: list[Prepared]) -> list[ChangeEvent]:
        return self.indexing.commit_index(tasks, prepared)

    def abandon_index(self, tasks: list[IndexTask], error: str) -> None:
        self.indexing.abandon_index(tasks, error)

    def next_job_due(self) -> datetime | None:
        return self.indexing.next_job_due()

    def follow_changes(self) -> int:
        """Apply chunk writes other processes committed to a shared catalog (0 where there are none to follow)."""
        return self.following.follow() if self.following is not None else 0

    @property
    def relays_events(self) -> bool:
        """Whether changes made here are announced to other processes through the catalog (a shared one)."""
        return self.db.feed is not None

    def publish_event(self, event: ChangeEvent) -> None:
        if self.db.feed is not None:
            self.db.feed.publish(event)

    def foreign_events(self) -> list[ChangeEvent]:
        """Changes other replicas announced since the last call (their subscribers' notifications fire here too)."""
        return self.db.feed.take_events() if self.db.feed is not None else []

    def wait_for_changes(self, timeout: float) -> bool:
        """Block until another process announces a chunk write, or `timeout`; True if one did."""
        return self.following.wait(timeout) if self.following is not None else False

    @property
    def job_lease_seconds(self) -> float | None:
        """How long a job claim lasts without renewal, where claims are shared (None: this process owns them)."""
        lease = self.db.jobs.lease
        return lease.total_seconds() if lease is not None else None

    def job_heartbeat(self) -> int:
        """Renew this process's job claims and requeue lapsed ones; how many were requeued."""
        from artifact_mcp.storage.clock import utcnow

        return self.db.jobs.heartbeat(utcnow())

    def warm_up(self) -> None:
        """Load what a query needs (the owner calls it once the store is open), so that the first query does not
        wait for it; `is_warm` turns true after. Not the chunkers: index jobs run in the preparation child
        (index/child.py), which loads its own. Loading them here as well delayed the first query (bench/startup.py:
        spawn -> first query 2.42 s with them, 2.29 s without); the idle RSS stayed ~400 MB either way. The model's
        session was started before the catalog's imports (open_store), so it is usually ready by now."""
        try:
            self.indexer.embed_query("warm up")  # loads the embedding model (seconds, the first time)
            with self._lock:  # the search mirror, which the first query would otherwise load
                if not self.cache.loaded:
                    self.cache.load(self.db.chunks, self.db.postings)
            from artifact_mcp.storage.heap import trim_heap
            from artifact_mcp.storage.index.cl100k import count_tokens

            # tiktoken's cl100k, which every query's context is measured with: 0.1-0.2 s of Python to parse, 0.09
            # from its cache (index/cl100k.py), which the first query paid (bench/startup.py: 0.15 s between the
            # store being warm and the answer).
            count_tokens("warm up")
            trim_heap()
        except ModelNotPrepared as exc:  # not a fault: setup is not done; say what to do, without a traceback
            log.warning("%s; until then semantic and hybrid queries fail with this message, keyword queries and "
                        "every other tool work", exc)
        except Exception:
            log.exception("warming up search failed; the first query will load what it needs")
        finally:
            self._warm.set()

    def serve_cold(self) -> None:
        """Answer queries without warm_up (an owner that runs no background work): the first one loads what it
        needs."""
        self._warm.set()

    def claim_generation_jobs(self, limit: int) -> list[GenerationTask]:
        return self.generation.claim_generation_jobs(limit)

    def next_generation_due(self) -> datetime | None:
        return self.generation.next_generation_due()

    def run_generation(self, task: GenerationTask) -> GenerationOutcome:
        return self.generation.run_generation(task)

    def commit_generation(self, task: GenerationTask, outcome: GenerationOutcome) -> list[ChangeEvent]:
        return self.generation.commit_generation(task, outcome)

    def sweep_expired(self) -> list[ChangeEvent]:
        return self._housekeeping.sweep_expired()

    def collect_garbage(self) -> int:
        return self._housekeeping.collect_garbage()
