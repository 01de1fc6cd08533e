"""The chunker's value types: a chunk with its source offsets, the chunking settings, and a span being built."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    text: str  # the text to embed / index for this chunk
    start: int  # character offset into the source text given to split()
    end: int  # exclusive end offset into the source text


@dataclass(frozen=True)
class ChunkingConfig:
    chunk_size: int = 512  # tokens, counted with LlamaIndex's default tokenizer (tiktoken)
    chunk_overlap: int = 64  # tokens; prose only: code and JSON chunks never overlap

    def __post_init__(self) -> None:
        if self.chunk_size < 1 or not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError(f"need chunk_size >= 1 and 0 <= chunk_overlap < chunk_size, got {self}")


DEFAULT_CONFIG = ChunkingConfig()


@dataclass(slots=True)
class Span:
    start: int
    end: int
    prefix: str = ""
