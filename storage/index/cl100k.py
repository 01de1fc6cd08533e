"""tiktoken's cl100k_base: the tokens that chunk sizes and a query's context budget are counted in.

tiktoken builds it from the BPE file llama-index-core ships (nothing is downloaded): ~100,000 base64 lines parsed
in Python (0.12-0.19 s), then its Rust tokenizer built from them (0.06 s). Every query counts its context's tokens,
so a server's first query waited for that load (bench/startup.py). The parsed ranks are therefore kept once in the
cache directory as a marshal file (a dict of bytes to int: marshal builds data and never runs code) behind the
sha256 of its bytes, keyed by the tiktoken and llama-index-core versions, and checked against a probe text's
tokens: reading it back takes 0.025 s, 0.09 s with the tokenizer built (measured in-process, against 0.19 s for
the parse). The chunkers also make it LlamaIndex's global tokenizer (`llama_tokenizer`), so its splitters count
the same tokens; the query path counts with `tokenizer()`, which imports no LlamaIndex. A cache
that cannot be read, does not match or cannot be written only costs the parse.
"""

from __future__ import annotations

import hashlib
import logging
import marshal
import os
import tempfile
from collections.abc import Callable
from functools import cache, partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_PROBE = "Artifacts: reports, transcripts & JSON {\"k\": [1, 2]} — naïve café 東京 getUserId()\n"


def _cache_file() -> Path | None:
    from artifact_mcp.storage.index.onnx.cache import default_cache_dir

    try:
        key = f"tiktoken{version('tiktoken')}-llamaindex{version('llama-index-core')}"
    except PackageNotFoundError:  # no versions to key by: parse every time
        return None
    return default_cache_dir() / f"cl100k_base-{key}.marshal"


def _parsed() -> Any:
    """The encoding the slow way: tiktoken parsing the copy of the BPE file that llama-index-core ships (pointed at
    as LlamaIndex's get_tokenizer points at it, unless TIKTOKEN_CACHE_DIR is set)."""
    import importlib.util

    import tiktoken

    if "TIKTOKEN_CACHE_DIR" in os.environ:
        return tiktoken.get_encoding("cl100k_base")
    # Found, not imported (find_spec of llama_index.core would import the llama_index namespace package; importing
    # llama_index.core costs ~1 s, repositories/chunk_filters.py).
    spec = importlib.util.find_spec("llama_index")
    found = [Path(p) / "core/_static/tiktoken_cache" for p in (spec.submodule_search_locations or [])] if spec else []
    found = [p for p in found if p.is_dir()]
    if not found:
        raise RuntimeError("llama-index-core's copy of the cl100k BPE file is missing: reinstall llama-index-core")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(found[0])
    try:
        return tiktoken.get_encoding("cl100k_base")
    finally:
        del os.environ["TIKTOKEN_CACHE_DIR"]


@cache
def _cached_encoding_class() -> type:
    """`tiktoken.Encoding` that pickles (and deep-copies) as a call of `encoding()`, which in the process that
    loads it reads the same cache: its ranks are dropped once loaded (`encoding`), and tiktoken would pickle them.
    A class made on first use, so that importing this module does not import tiktoken."""
    import tiktoken

    class CachedEncoding(tiktoken.Encoding):
        def __reduce__(self) -> tuple[Callable[[], Any], tuple[()]]:
            return encoding, ()

    return CachedEncoding


def _from_cache(path: Path) -> Any | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    digest, payload = data[:32], data[32:]
    if hashlib.sha256(payload).digest() != digest:
        log.debug("tokenizer cache %s is damaged: parsing the BPE file", path)
        return None
    try:
        state = marshal.loads(payload)
        probe = state.pop("probe")
        enc = _cached_encoding_class()(**state)
        # Ranks that are whole but not the ones the probe was made with; a rank missing makes tiktoken's Rust
        # code panic, which is a BaseException.
        matches = enc.encode(_PROBE, allowed_special="all") == probe
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        log.debug("tokenizer cache %s unreadable (%s): parsing the BPE file", path, exc)
        return None
    if not matches:
        log.debug("tokenizer cache %s does not match its probe: parsing the BPE file", path)
        return None
    return enc


def _store(path: Path, enc: Any) -> None:
    state = {"name": enc.name, "pat_str": enc._pat_str, "mergeable_ranks": enc._mergeable_ranks,
             "special_tokens": enc._special_tokens, "probe": enc.encode(_PROBE, allowed_special="all")}
    payload = marshal.dumps(state)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cl100k-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, path)  # atomic: a reader sees the whole file or none (and checks its digest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.debug("tokenizer cache %s not written: %s", path, exc)


@cache
def encoding() -> Any:
    """The `tiktoken.Encoding` (loaded once per process)."""
    path = _cache_file()
    enc = _from_cache(path) if path is not None else None
    if enc is not None:
        # Its Python dict of ranks is only kept for pickling: encoding and decoding use the Rust tokenizer built
        # from it. Dropped, an idle server's RSS is 8 MiB smaller (measured in-process: 258 -> 250 MiB with a
        # warm search mirror); it pickles by reference instead (_cached_encoding_class). Only ours: the parsed
        # one is tiktoken's registered instance, which others may share.
        enc._mergeable_ranks = None
        return enc
    enc = _parsed()
    if path is not None:
        _store(path, enc)
    return enc


@cache
def tokenizer() -> Callable[[str], list[int]]:
    """Text to cl100k token ids (special tokens encoded as text, as LlamaIndex's tokenizer does)."""
    return partial(encoding().encode, allowed_special="all")


@cache
def llama_tokenizer() -> Callable[[str], list[int]]:
    """`tokenizer()`, also made LlamaIndex's global tokenizer, so nothing of its own loads the encoding a second
    time: for code that imports LlamaIndex anyway (the chunkers); the query path does not."""
    from llama_index.core import set_global_tokenizer

    encode = tokenizer()
    set_global_tokenizer(encode)
    return encode


def count_tokens(text: str) -> int:
    return len(tokenizer()(text))
