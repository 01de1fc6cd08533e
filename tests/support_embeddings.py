"""Embedding models for tests, plugged in the way users plug in any LlamaIndex embedding:
`ARTIFACT_MCP_EMBEDDING_MODEL=class:tests.support_embeddings:<Class>` with `ARTIFACT_MCP_EMBEDDING_KWARGS`.

They wrap the built-in hashing embedding, so results stay deterministic, and add the failure modes the
job runner must survive: failing batches, and batches slow enough to kill a server in the middle of one.
"""

from __future__ import annotations

import time
from pathlib import Path

from artifact_mcp.storage.index.llama_embeddings import HashEmbedding


class FlakyEmbedding(HashEmbedding):
    """Fails its first `failures` batch embeddings (counted in `counter_file`, so across processes too)."""

    failures: int = 2
    counter_file: str

    @classmethod
    def class_name(cls) -> str:
        return "FlakyEmbedding"

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        path = Path(self.counter_file)
        calls = int(path.read_text() or 0) if path.exists() else 0
        path.write_text(str(calls + 1))
        if calls < self.failures:
            raise RuntimeError(f"embedding backend unavailable (simulated failure {calls + 1} of {self.failures})")
        return super()._get_text_embeddings(texts)


class SlowEmbedding(HashEmbedding):
    """Sleeps `delay_seconds` in every batch (after touching `started_file`, so a test knows it is inside)."""

    delay_seconds: float = 0.0
    started_file: str | None = None

    @classmethod
    def class_name(cls) -> str:
        return "SlowEmbedding"

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        if self.started_file:
            Path(self.started_file).touch()
        time.sleep(self.delay_seconds)
        return super()._get_text_embeddings(texts)
