"""The store's figures for a tenant: artifacts by type and status, versions, storage, the indexing backlog."""

from __future__ import annotations

from artifact_mcp.storage.access import Access
from artifact_mcp.storage.ownership.client import StoreClient
from artifact_mcp.storage.stats import StoreStats


async def store_stats(store: StoreClient, access: Access) -> StoreStats:
    return await store.stats(access.scope)
