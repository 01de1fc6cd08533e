"""The `hash:<dim>` embedding: signed feature hashing of the lexical tokens, L2-normalised. Deterministic across
processes; lexical only (not semantic), for tiny installs and for exercising the pipeline fast."""

from __future__ import annotations

import hashlib

import numpy as np

from artifact_mcp.storage.index.tokenize import tokens
from artifact_mcp.storage.index.vectors import normalise


class HashEncoder:
    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self._hashes: dict[str, int] = {}

    def vector(self, text: str) -> np.ndarray:
        vec = np.zeros(self.dim, dtype=np.float32)
        for tok in tokens(text):
            h = self._hashes.get(tok)
            if h is None:
                h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
                self._hashes[tok] = h
            vec[h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm else vec

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of `texts` (a zero vector for a text without tokens), in their order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Normalised a second time, as the vectors of a LlamaIndex embedding are (EmbeddingModel.embed_texts): the
        # float32 division rounds, and this keeps `hash:` vectors the same to the bit as before and as those of
        # `class:` models built on llama_embeddings.HashEmbedding.
        return normalise(np.stack([self.vector(t) for t in texts]))
