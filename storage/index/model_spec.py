"""The embedding model setting, parsed without loading anything (no LlamaIndex, no ONNX Runtime): what a process
needs to know about the model before it imports them (index/onnx/session.py starts loading the default one early).
index/embeddings.py describes the choices and builds the models."""

from __future__ import annotations

DEFAULT_MODEL = "default"
DEFAULT_VARIANT = "int8"
"""int8, because it keeps the ranking: bench/recall.py ../shared/data/beir/scifact --split train (5,183 documents,
809 queries, the same run settings) gives hybrid nDCG@10 0.7466 against fp32's 0.7469 (R@100 0.9563 both; dense
only 0.6929 against 0.6945), issue 12's bar being 0.744. It ingests 2.1x fp32's chunks/s (the model alone, 2
cores: 185 against 85; one text per run, a run per core: onnx/session.threads), through MCP 2.57x the torch
pipeline against fp32's 1.45x, and embeds a query in 2.0 ms against 4.4. Its vectors are not fp32's (cosine 0.995
on average), so it has its own model id: a store indexed by the fp32 default keeps fp32 under the plain `default`
setting (`sticky_default`) instead of re-indexing everything on upgrade; `default:int8` asks for the switch."""
DEFAULT_VARIANTS = ("int8", "fp32", "torch")


def parse(spec: str) -> tuple[str, str]:
    """(kind, argument) of a model setting: ("default", variant), ("hash", dim), ("hf", name), ("class", path)."""
    spec = spec.strip()
    if _is_plain_default(spec):
        return "default", DEFAULT_VARIANT
    kind, sep, arg = spec.partition(":")
    if (sep and kind in ("hash", "hf", "class")) or (kind == "default" and arg in DEFAULT_VARIANTS):
        return kind, arg
    raise ValueError(
        f"unknown embedding model {spec!r}: use 'default' (or 'default:int8', 'default:fp32', "
        "'default:torch'), 'hf:<name or path>', 'hash:<dim>' or 'class:<module>:<Class>'"
    )


def _is_plain_default(spec: str) -> bool:
    """The default model named without a variant: the variant is DEFAULT_VARIANT's."""
    return spec.strip() in (DEFAULT_MODEL, "all-MiniLM-L6-v2")


def sticky_default(spec: str, has_fp32_index: bool) -> str:
    """The model setting a store opens with: `spec`, except that the plain `default` of a store holding an index
    the fp32 default built (before int8 became the default) stays fp32: changing the model re-indexes every
    artifact, and search finds less until that is done. A store with nothing indexed yet has nothing to keep."""
    return f"{DEFAULT_MODEL}:fp32" if has_fp32_index and _is_plain_default(spec) else spec
