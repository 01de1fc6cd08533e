"""The project's LlamaIndex vector store, used the LlamaIndex way on a catalog the server wrote."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from mcp import Client

from artifact_mcp.server.app import build_app
from artifact_mcp.server.settings import Settings
from artifact_mcp.storage.index.embeddings import build_model
from artifact_mcp.storage.repositories.chunk_filters import ChunkFilter, ChunkFilters, Op, all_of, any_of
from artifact_mcp.storage.repositories.duckdb.chunks import DuckDBChunkStore
from artifact_mcp.storage.repositories.vector_store import ChunkVectorStore
from tests.conftest import TEST_EMBEDDING, call

pytestmark = pytest.mark.anyio


async def test_llamaindex_query_with_filters(settings: Settings) -> None:
    app, _ = build_app(settings)
    async with Client(app) as client:
        ids = {}
        for name, text, ns, tags in [("a", "otters hold hands while sleeping", "default", ["x"]),
                                     ("b", "otters eat sea urchins", "default", ["y"]),
                                     ("c", "otters in another namespace", "other", ["x"])]:
            art = await call(client, "create_artifact", {"name": name, "content": text, "namespace_id": ns,
                                                         "tags": tags, "wait_for_index": True})
            ids[name] = art["artifact_id"]
        mcp_top = (await call(client, "query_artifacts", {"query": "otters sleeping", "mode": "semantic"}))["results"]

    con = duckdb.connect(str(settings.data_dir / "catalog.duckdb"), read_only=True)
    try:
        chunks = DuckDBChunkStore(con, dim=384)
        assert chunks.embedding_dim() == 384
        store = ChunkVectorStore.over(chunks)
        assert store.client is con
        query = build_model(TEST_EMBEDDING).embed_query("otters sleeping").tolist()
        default_ns = MetadataFilters(filters=[MetadataFilter(key="namespace_id", value="default")])
        result = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=5, filters=default_ns))
        found = [n.metadata["artifact_id"] for n in result.nodes]
        assert set(found) == {ids["a"], ids["b"]}
        assert result.similarities == sorted(result.similarities, reverse=True)
        # The same best artifact as the MCP tool's semantic mode.
        assert found[0] == mcp_top[0]["artifact"]["artifact_id"]
        node = result.nodes[0]
        assert node.get_content() and node.end_char_idx > node.start_char_idx
        tagged = MetadataFilters(filters=[MetadataFilter(key="tags", operator=FilterOperator.CONTAINS, value="x")])
        result = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=5, filters=tagged))
        assert {n.metadata["artifact_id"] for n in result.nodes} == {ids["a"], ids["c"]}
        either = MetadataFilters(filters=[MetadataFilter(key="namespace_id", value="other"),
                                          MetadataFilter(key="tags", operator=FilterOperator.ANY, value=["y"])],
                                 condition=FilterCondition.OR)
        result = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=5, filters=either))
        assert {n.metadata["artifact_id"] for n in result.nodes} == {ids["b"], ids["c"]}
        # NOT, and a group nested in a group: neither in namespace "other" nor tagged "y", of a listed type.
        neither = MetadataFilters(filters=[
            MetadataFilters(filters=[MetadataFilter(key="namespace_id", value="other"),
                                     MetadataFilter(key="tags", operator=FilterOperator.CONTAINS, value="y")],
                            condition=FilterCondition.OR),
        ], condition=FilterCondition.NOT)
        typed = MetadataFilters(filters=[neither, MetadataFilter(key="artifact_type", operator=FilterOperator.IN,
                                                                 value=["note", "document"])])
        result = store.query(VectorStoreQuery(query_embedding=query, similarity_top_k=5, filters=typed))
        assert [n.metadata["artifact_id"] for n in result.nodes] == [ids["a"]]
        with pytest.raises(ValueError, match="cannot filter"):
            store.query(VectorStoreQuery(query_embedding=query, filters=MetadataFilters(
                filters=[MetadataFilter(key="text; DROP TABLE chunks", value="x")])))
        with pytest.raises(ValueError, match="operator '<' is not supported on namespace_id"):
            store.query(VectorStoreQuery(query_embedding=query, filters=MetadataFilters(
                filters=[MetadataFilter(key="namespace_id", operator=FilterOperator.LT, value="x")])))
    finally:
        con.close()

    # Written the LlamaIndex way: nodes in, found by the same filters, deleted by artifact version.
    con = duckdb.connect(str(settings.data_dir / "catalog.duckdb"))
    try:
        store = ChunkVectorStore.over(DuckDBChunkStore(con, dim=384))
        meta = {"artifact_id": "art_llama", "root_artifact_id": "art_llama", "version": 1, "org_id": "default",
                "workspace_id": "default", "namespace_id": "third", "thread_id": None, "artifact_type": "note",
                "tags": ["z"], "collection": "artifacts", "expires_at": None, "chunk_index": 0, "n_terms": 3}
        vector = build_model(TEST_EMBEDDING).embed_query("otters and llamas").tolist()
        ids = store.add([TextNode(id_="n1", text="otters and llamas", metadata=meta, embedding=vector,
                                  start_char_idx=0, end_char_idx=17)])
        assert ids == ["n1"]
        third = MetadataFilters(filters=[MetadataFilter(key="namespace_id", value="third")])
        result = store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=5, filters=third))
        assert [n.node_id for n in result.nodes] == ["n1"] and result.similarities[0] == pytest.approx(1.0)
        assert result.nodes[0].get_content() == "otters and llamas" and result.nodes[0].metadata["seq"] > 0
        store.delete("art_llama")
        assert store.query(VectorStoreQuery(query_embedding=vector, filters=third)).nodes == []
    finally:
        con.close()


def test_the_store_and_llamaindex_embed_alike() -> None:
    """`hash:` embeds without LlamaIndex (hashing.py), and gives the vectors, to the bit, of the LlamaIndex
    embedding the tests' `class:` models are built on, and of its own LlamaIndex face."""
    texts = ["otters hold hands while sleeping", "Revenue grew 4% in Q3 (see table 2)", "", "a b c d e f g"]
    model = build_model("hash:384")
    ours = model.embed_texts(texts)
    theirs = build_model("class:artifact_mcp.storage.index.llama_embeddings:HashEmbedding").embed_texts(texts)
    assert ours.dtype == np.float32 and ours.shape == (4, 384)
    assert np.array_equal(ours, theirs)
    assert np.array_equal(model.embed_query(texts[0]), ours[0])
    face = model.as_llama()
    assert face.embed_batch_size == 32
    assert np.array_equal(np.asarray(face.get_text_embedding_batch(texts), dtype=np.float32), ours)
    assert not ours[2].any() and np.linalg.norm(ours[0]) == pytest.approx(1.0)


def test_chunk_filters_refuse_what_they_cannot_mean() -> None:
    with pytest.raises(ValueError, match="condition 'NOT' is not one of and, or, not"):
        ChunkFilters((ChunkFilter("namespace_id", "x"),), "NOT")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="operator '<' is not supported on namespace_id"):
        ChunkFilter("namespace_id", "x", "<")  # type: ignore[arg-type]
    assert ChunkFilter("tags", ["a"], "all").op is Op.ALL  # type: ignore[arg-type]
    one = all_of(ChunkFilter("org_id", "o"), any_of(ChunkFilter("tags", ["a", "b"], Op.ALL)))
    same = all_of(ChunkFilter("org_id", "o"), any_of(ChunkFilter("tags", ["a", "b"], Op.ALL)))
    assert one.cache_key() == same.cache_key()
    for other in (all_of(ChunkFilter("org_id", "p"), any_of(ChunkFilter("tags", ["a", "b"], Op.ALL))),
                  all_of(ChunkFilter("org_id", "o"), any_of(ChunkFilter("tags", ["a", "b"], Op.ANY))),
                  any_of(ChunkFilter("org_id", "o"), any_of(ChunkFilter("tags", ["a", "b"], Op.ALL))),
                  all_of(ChunkFilter("org_id", "o"), all_of(ChunkFilter("tags", ["a", "b"], Op.ALL)))):
        assert other.cache_key() != one.cache_key()
