"""LlamaIndex nodes as chunk rows: what a vector store's `add` takes, turned into what `add_rows` inserts."""

from __future__ import annotations

from typing import Any

import numpy as np
from llama_index.core.schema import BaseNode

from artifact_mcp.storage.repositories.rows import CHUNK_COLUMNS

# Columns copied from node metadata (the indexer sets them from the artifact row).
META_COLUMNS = (
    "seq", "artifact_id", "root_artifact_id", "version", "org_id", "workspace_id", "namespace_id", "thread_id",
    "artifact_type", "tags", "collection", "expires_at", "chunk_index", "n_terms",
)


def chunk_rows(nodes: list[BaseNode]) -> tuple[dict[str, list[Any]], np.ndarray]:
    """(columns by `CHUNK_COLUMNS` name, (n, dim) float32 vectors) of these nodes."""
    cols: dict[str, list[Any]] = {c: [] for c in CHUNK_COLUMNS}
    for node in nodes:
        meta = node.metadata
        for c in META_COLUMNS:
            cols[c].append(meta.get(c))
        cols["chunk_id"].append(node.node_id)
        cols["start_char"].append(node.start_char_idx or 0)
        cols["end_char"].append(node.end_char_idx or 0)
        cols["text"].append(node.get_content())
    return cols, np.array([node.get_embedding() for node in nodes], dtype=np.float32)
