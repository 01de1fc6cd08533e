"""Recall use cases: search, promote to a knowledge source, an artifact's background jobs."""

from __future__ import annotations

from artifact_mcp.storage.access import Access
from artifact_mcp.storage.models import JobList, PromoteRequest, PromoteResult, QueryRequest, QueryResult
from artifact_mcp.storage.ownership.client import StoreClient


async def query_artifacts(store: StoreClient, access: Access, req: QueryRequest) -> QueryResult:
    return await store.query(access.scope, QueryRequest.model_validate(req.model_dump(
        include=set(QueryRequest.model_fields))))


async def promote_artifact(store: StoreClient, access: Access, artifact_id: str,
                           req: PromoteRequest) -> PromoteResult:
    return await store.promote(access.scope, artifact_id, PromoteRequest(source_name=req.source_name,
                                                                         description=req.description))


async def list_jobs(store: StoreClient, access: Access, artifact_id: str) -> JobList:
    return await store.list_jobs(access.scope, artifact_id)
