"""Recall use cases: search, promote to a knowledge source, an artifact's background jobs."""

from __future__ import annotations

from artifact_mcp.storage.access import Access
from artifact_mcp.storage.models import Job, JobList, PromoteRequest, PromoteResult, QueryRequest, QueryResult
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.usecases.progress import Progress, report

# How long a query waits for the store to open and the embedding model to load before it is sent anyway.
WARM_WAIT_SECONDS = 300.0


async def query_artifacts(store: StoreClient, access: Access, req: QueryRequest,
                          progress: Progress | None = None) -> QueryResult:
    """Search. A query that comes while the server is starting waits for the store and the model, reporting
    progress."""

    async def on_state(state: str, fraction: float) -> None:
        await report(progress, fraction, state)

    await store.wait_warm(WARM_WAIT_SECONDS, on_state, model=req.mode != "keyword")
    return await store.query(access.scope, QueryRequest.model_validate(req.model_dump(
        include=set(QueryRequest.model_fields))))


async def promote_artifact(store: StoreClient, access: Access, artifact_id: str,
                           req: PromoteRequest) -> PromoteResult:
    return await store.promote(access.scope, artifact_id, PromoteRequest(source_name=req.source_name,
                                                                         description=req.description))


async def list_jobs(store: StoreClient, access: Access, artifact_id: str) -> JobList:
    return await store.list_jobs(access.scope, artifact_id)


async def retry_index(store: StoreClient, access: Access, artifact_id: str) -> Job:
    """Re-run a version's failed index job: a new job with fresh attempts (the failed one stays in the history)."""
    return await store.retry_index(access.scope, artifact_id)
