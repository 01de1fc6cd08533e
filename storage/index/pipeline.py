"""From an artifact version to index-ready chunks: text extraction, chunking, lexical terms, embeddings.

Pure computation, no catalog access and no lock: the job runner calls it between claiming jobs and
committing their chunks (in a child process, `index/child.py`, so that its Python loops never hold the GIL of
the process serving requests).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np

from artifact_mcp.storage import content as contentlib
from artifact_mcp.storage.config import IndexConfig
from artifact_mcp.storage.errors import MODEL_NOT_PREPARED, ModelNotPrepared
from artifact_mcp.storage.index import chunking
from artifact_mcp.storage.index.embeddings import EmbeddingModel, model_available, shared_model
from artifact_mcp.storage.index.lexical import hashed_counts
from artifact_mcp.storage.repositories.rows import ArtifactRow

log = logging.getLogger(__name__)

@dataclass
class PreparedChunk:
    index: int
    text: str
    start: int
    end: int
    terms: list[int]  # term hashes (lexical.term_hash), computed here, outside the store lock
    tfs: list[int]
    n_terms: int
    embed_text: str


@dataclass
class PrepareInput:
    """What preparing one version needs: its row (with content_text when it has one), and a PDF's bytes when its
    text is still to be extracted."""

    row: ArtifactRow
    pdf: bytes | None = None


@dataclass
class Prepared:
    """One artifact version, ready to be written: chunks with their vectors."""

    chunks: list[PreparedChunk]
    extracted_text: str | None = None  # text found in a file (PDF) that the catalog did not have yet
    vectors: np.ndarray | None = None
    error: str | None = None


def _header(row: ArtifactRow) -> str:
    """Descriptive fields that make a file with no text (an image, a zip) findable by what the agent said."""
    parts = [row.name or "", row.description or "", row.summary or ""]
    parts += list(row.keywords or []) + list(row.tags or [])
    return "\n".join(p for p in parts if p)


class Indexer:
    def __init__(self, config: IndexConfig) -> None:
        self.config = config
        self.chunking = chunking.ChunkingConfig(chunk_size=config.chunk_size, chunk_overlap=config.chunk_overlap)
        self._model: EmbeddingModel | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> EmbeddingModel:
        # Loaded on first use: a store that never indexes (a forwarder, `artifact-mcp gc`) never pays for torch.
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = shared_model(self.config.embedding_model, batch_size=self.config.embed_batch_size,
                                               kwargs=self.config.embedding_kwargs,
                                               cache_dir=self.config.model_cache_dir)
        return self._model

    @property
    def model_id(self) -> str:
        return self.config.model_id

    def model_available(self) -> bool:
        """Whether the model can load (its weights are on this machine): index jobs wait for it otherwise."""
        return self._model is not None or model_available(self.config.embedding_model, self.config.model_cache_dir)

    def require_model(self) -> None:
        """Raise `ModelNotPrepared` now, not only once there are vectors to compare (an empty index has none)."""
        if not self.model_available():
            raise ModelNotPrepared(MODEL_NOT_PREPARED)

    def prepare(self, row: ArtifactRow, text: str | None) -> list[PreparedChunk]:
        """Chunks of one version's text (or a single descriptive chunk for a file without text)."""
        name = row.name or ""
        spans = chunking.split(text, row.mime_type, row.file_name, self.chunking) if text else []
        out: list[PreparedChunk] = []
        if not spans:
            header = _header(row)
            terms, tfs, n = hashed_counts(header)
            return [PreparedChunk(0, header, 0, 0, terms, tfs, n, header)] if header else []
        for i, span in enumerate(spans):
            embedded = f"{name}\n\n{span.text}" if self.config.name_in_chunks and name else span.text
            # The name counts once per version, in its first chunk's lexical terms.
            terms, tfs, n = hashed_counts(f"{name}\n\n{span.text}" if i == 0 and name else span.text)
            out.append(PreparedChunk(i, span.text, span.start, span.end, terms, tfs, n, embedded))
        return out

    def prepare_batch(self, inputs: list[PrepareInput]) -> list[Prepared]:
        """Extract, chunk and embed. Errors are per input; one embedding batch serves them all, because the model
        is several times faster on a batch than on one chunk at a time."""
        out: list[Prepared] = []
        for item in inputs:
            try:
                extracted = contentlib.extract_pdf_text(item.pdf) if item.pdf is not None else None
                text = item.row.content_text if extracted is None else extracted
                out.append(Prepared(chunks=self.prepare(item.row, text), extracted_text=extracted))
            except Exception as exc:
                out.append(Prepared(chunks=[], error=f"{type(exc).__name__}: {exc}"))
        ok = [p for p in out if p.error is None]
        try:
            vectors = self.embed([c.embed_text for p in ok for c in p.chunks])
        except Exception as exc:
            log.warning("embedding failed for %d artifacts: %s", len(ok), exc)
            for p in ok:
                p.error = f"embedding failed: {type(exc).__name__}: {exc}"
            return out
        start = 0
        for p in ok:
            p.vectors = vectors[start:start + len(p.chunks)]
            start += len(p.chunks)
        return out

    def warm_up(self) -> None:
        """Load the embedding model and the chunkers (seconds, the first time) before the first job needs them."""
        try:
            chunking.split("Warm up. The chunkers load tokenizers on first use.", "text/plain")
            self.embed_query("warm up")
        except ModelNotPrepared as exc:
            log.warning("%s; index jobs wait for it", exc)
        except Exception:
            log.exception("warming up the index pipeline failed; the first index job will retry the load")

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.model.embed_texts(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.model.embed_query(text)
