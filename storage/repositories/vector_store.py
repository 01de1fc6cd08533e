"""The chunk repository as a LlamaIndex vector store (`BasePydanticVectorStore`), for a LlamaIndex user of the
catalog: it reads and writes the table the store writes, the store's way (one statement per batch, filters in
SQL ahead of the top-k). The store itself never imports this module (chunk_filters.py says why).

    store = ChunkVectorStore.over(DuckDBChunkStore(duckdb.connect(path, read_only=True), dim=384))
    store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=5, filters=MetadataFilters(...)))
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.schema import BaseNode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryResult,
)

from artifact_mcp.storage.repositories.chunk_filters import ChunkFilter, ChunkFilters
from artifact_mcp.storage.repositories.protocols import ChunkRepository
from artifact_mcp.storage.repositories.rows import CHUNK_COLUMNS, META_COLUMNS

_CONDITIONS = {FilterCondition.AND: "and", FilterCondition.OR: "or", FilterCondition.NOT: "not"}


class ChunkVectorStore(BasePydanticVectorStore):
    stores_text: bool = True
    flat_metadata: bool = False
    _chunks: Any = PrivateAttr()

    @classmethod
    def over(cls, chunks: ChunkRepository) -> ChunkVectorStore:
        store = cls()
        store._chunks = chunks
        return store

    @classmethod
    def class_name(cls) -> str:
        return "ChunkVectorStore"

    @property
    def client(self) -> Any:
        return self._chunks.client

    def add(self, nodes: list[BaseNode], **add_kwargs: Any) -> list[str]:
        """Insert nodes whose metadata carries the chunk columns (`rows.META_COLUMNS`; `seq` may be left out)."""
        if not nodes:
            return []
        columns, vectors = chunk_rows(nodes)
        self._chunks.add_rows(columns, vectors)
        return columns["chunk_id"]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete the chunks of artifact version `ref_doc_id`."""
        self._chunks.delete_many([ref_doc_id])

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if query.query_embedding is None:
            raise ValueError("a vector query needs query_embedding")
        hits = self._chunks.nearest(query.query_embedding, to_chunk_filters(query.filters),
                                    int(query.similarity_top_k))
        nodes = [TextNode(id_=h.chunk_id, text=h.text, start_char_idx=h.start, end_char_idx=h.end,
                          metadata={"seq": h.seq, "artifact_id": h.artifact_id}) for h in hits]
        return VectorStoreQueryResult(nodes=nodes, similarities=[h.score for h in hits],
                                      ids=[h.chunk_id for h in hits])


def to_chunk_filters(filters: MetadataFilters | None) -> ChunkFilters | None:
    """LlamaIndex's filters as the store's (the same operators; one it does not support is refused)."""
    if filters is None:
        return None
    parts: list[ChunkFilter | ChunkFilters] = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            inner = to_chunk_filters(f)
            assert inner is not None
            parts.append(inner)
            continue
        assert isinstance(f, MetadataFilter)
        parts.append(ChunkFilter(f.key, f.value, f.operator.value))  # type: ignore[arg-type]  # refused if unknown
    return ChunkFilters(tuple(parts), _CONDITIONS[filters.condition or FilterCondition.AND])  # type: ignore[arg-type]


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
    if all(s is None for s in cols["seq"]):
        del cols["seq"]  # the table numbers them
    return cols, np.array([node.get_embedding() for node in nodes], dtype=np.float32)
