"""The store's own embedding models as LlamaIndex `BaseEmbedding`s, for LlamaIndex code (`EmbeddingModel.as_llama`,
and a `class:` model built on the hashing one, as the tests' failing and slow models are). The store embeds with
the encoders directly: the query path imports no LlamaIndex (repositories/chunk_filters.py says why)."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from artifact_mcp.storage.index.hashing import HashEncoder


class EncoderEmbedding(BaseEmbedding):
    """Any encoder (`encode(texts) -> (n, dim) unit vectors`) behind LlamaIndex's interface."""

    _encoder: Any = PrivateAttr()

    def __init__(self, encoder: Any, **data: Any) -> None:
        super().__init__(**data)
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        return "EncoderEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._encoder.encode([query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._encoder.encode([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode(texts).tolist()


class HashEmbedding(EncoderEmbedding):
    """`hash:<dim>` as a LlamaIndex embedding (hashing.py)."""

    dim: int = 384

    def __init__(self, **data: Any) -> None:
        super().__init__(None, **data)
        self._encoder = HashEncoder(self.dim)  # the dimension as validated

    @classmethod
    def class_name(cls) -> str:
        return "HashEmbedding"
