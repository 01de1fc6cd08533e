"""A sentence-transformers model on ONNX Runtime: the Hugging Face tokenizer (`tokenizers`, Rust) and the graph of
`graph.py`. No torch, and no LlamaIndex: the query path embeds with this directly (llama_embeddings.py wraps it
as a LlamaIndex `BaseEmbedding` for whoever wants one).

Texts are tokenized first and sorted by length, so a batch pads to its own longest text rather than to the
longest of a random mix (the torch pipeline batches in arrival order; bench/model.py prints both). A batch holds
at most `batch_tokens` padded tokens as well as at most `batch_size` texts. Small batches are faster here:
on 1,400 SciFact chunks (sorted, 2 cores), 1,024 padded tokens per batch embedded 88.6 chunks/s, 2,048 86.0 and
4,096 76.8 (the activations of a small batch stay in the CPU's caches). They are smaller in memory too: attention
keeps a [batch, heads, seq, seq] float matrix per layer, and ONNX Runtime's arena keeps the largest it has seen
for the life of the process.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from artifact_mcp.storage.index.onnx.cache import model_files
from artifact_mcp.storage.index.onnx.session import cores, session


class OnnxEncoder:
    max_length = 256  # the model's max_seq_length (sentence_bert_config.json)
    batch_tokens = 1024  # padded tokens per batch: 4 texts of 256 tokens, 8 of 128

    def __init__(self, model_dir: str, variant: str = "fp32", cache_dir: str | None = None,
                 batch_size: int = 32) -> None:
        from tokenizers import Tokenizer

        self.variant = variant
        self.batch_size = batch_size
        cache = Path(cache_dir) if cache_dir else None
        self._session: Any = session(Path(model_dir), variant, cache)
        # Mapped, not read: only the pages of the tokens in use become resident, and they are shared with every
        # process that maps the file (graph.py has the figures).
        self._words: np.ndarray = np.load(model_files(Path(model_dir), variant, cache)[1], mmap_mode="r")
        width = self._session.get_inputs()[0].shape[2]
        if self._words.ndim != 2 or self._words.shape[1] != width:
            raise ValueError(f"the token table has shape {self._words.shape}; the graph takes rows of {width}")
        self._pool: ThreadPoolExecutor | None = None
        tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        # tokenizer.json pads and truncates to 128; sentence-transformers reads up to max_seq_length.
        tokenizer.enable_truncation(self.max_length)
        tokenizer.no_padding()  # each batch is padded here, to its own longest text
        self._tokenizer = tokenizer

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Unit vectors of `texts`, in their order."""
        if self.variant == "int8":
            return self._encode_one_by_one(texts)
        size = batch_size or self.batch_size
        ids = [e.ids for e in self._tokenizer.encode_batch(texts)]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        out: np.ndarray | None = None
        start = 0
        while start < len(order):
            # Sorted by length: the last text of a batch is its longest.
            end = start + 1
            while end < len(order) and end - start < size and (end - start + 1) * len(ids[order[end]]) <= max(
                    self.batch_tokens, len(ids[order[end]])):
                end += 1
            batch = order[start:end]
            width = len(ids[batch[-1]])
            tokens = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                tokens[row, :len(ids[i])] = ids[i]
                mask[row, :len(ids[i])] = 1
            vectors = self._session.run(None, {"token_embeddings": self._rows(tokens), "attention_mask": mask})[0]
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[batch] = vectors
            start = end
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    def _encode_one_by_one(self, texts: list[str]) -> np.ndarray:
        """int8 scales activations over the whole batch (onnx/cache.py): one text at a time keeps a vector
        independent of its batch-mates, and computes no padding. The runs are spread over the cores (each run
        has one thread: session.threads)."""
        ids = [e.ids for e in self._tokenizer.encode_batch(texts)]

        def run(i: int) -> np.ndarray:
            tokens = np.asarray([ids[i]], dtype=np.int64)
            return self._session.run(None, {"token_embeddings": self._rows(tokens),
                                            "attention_mask": np.ones_like(tokens)})[0][0]

        if len(texts) < 2 or cores() < 2:
            vectors = [run(i) for i in range(len(texts))]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(cores(), thread_name_prefix="onnx-embed")
            vectors = list(self._pool.map(run, range(len(texts))))
        return np.stack(vectors).astype(np.float32, copy=False) if vectors else np.zeros((0, 0), dtype=np.float32)

    def _rows(self, tokens: np.ndarray) -> np.ndarray:
        """The token table's rows for `tokens` [batch, seq] (padding is id 0, as the graph's Gather had it)."""
        return np.ascontiguousarray(self._words[tokens], dtype=np.float32)
