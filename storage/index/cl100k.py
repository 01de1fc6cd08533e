"""tiktoken's cl100k_base: the tokens that chunk sizes and a query's context budget are counted in.

tiktoken builds it from the BPE file llama-index-core ships (nothing is downloaded): ~100,000 base64 lines parsed
in Python (0.12-0.19 s), then its Rust tokenizer built from them (0.06 s). Every query counts its context's tokens,
so a server's first query waited for that load (bench/startup.py). The parsed ranks are therefore kept once in the
cache directory as a marshal file (a dict of bytes to int: marshal builds data and never runs code), keyed by the
tiktoken and llama-index-core versions and checked against a probe text's tokens; reading them back takes 0.025 s
instead of the parse. The encoding is also made LlamaIndex's global tokenizer, so its splitters count the same
tokens. A cache that cannot be read or written only costs the parse.
"""

from __future__ import annotations

import logging
import marshal
import os
import tempfile
from collections.abc import Callable
from functools import cache, partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_PROBE = "Artifacts: reports, transcripts & JSON {\"k\": [1, 2]} — naïve café 東京 getUserId()\n"


def _cache_file() -> Path:
    from artifact_mcp.storage.index.onnx.cache import default_cache_dir

    key = f"tiktoken{version('tiktoken')}-llamaindex{version('llama-index-core')}"
    return default_cache_dir() / f"cl100k_base-{key}.marshal"


def _parsed() -> Any:
    """The encoding the slow way: tiktoken reading llama-index-core's copy of the BPE file."""
    from llama_index.core.utils import get_tokenizer

    return get_tokenizer("gpt-3.5-turbo").func.__self__  # type: ignore[attr-defined]


def _from_cache(path: Path) -> Any | None:
    import tiktoken

    try:
        state = marshal.loads(path.read_bytes())
        probe = state.pop("probe")
        enc = tiktoken.Encoding(**state)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, TypeError, KeyError) as exc:
        log.debug("tokenizer cache %s unreadable (%s): parsing the BPE file", path, exc)
        return None
    if enc.encode(_PROBE, allowed_special="all") != probe:
        log.debug("tokenizer cache %s does not match its probe: parsing the BPE file", path)
        return None
    return enc


def _store(path: Path, enc: Any) -> None:
    state = {"name": enc.name, "pat_str": enc._pat_str, "mergeable_ranks": enc._mergeable_ranks,
             "special_tokens": enc._special_tokens, "probe": enc.encode(_PROBE, allowed_special="all")}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".cl100k-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(marshal.dumps(state))
            os.replace(tmp, path)  # atomic: a reader sees the whole file or none
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.debug("tokenizer cache %s not written: %s", path, exc)


@cache
def encoding() -> Any:
    """The `tiktoken.Encoding` (loaded once per process)."""
    from llama_index.core import set_global_tokenizer

    path = _cache_file()
    enc = _from_cache(path)
    if enc is None:
        enc = _parsed()
        _store(path, enc)
    set_global_tokenizer(partial(enc.encode, allowed_special="all"))
    return enc


@cache
def tokenizer() -> Callable[[str], list[int]]:
    """Text to cl100k token ids (special tokens encoded as text, as LlamaIndex's tokenizer does)."""
    return partial(encoding().encode, allowed_special="all")


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, allowed_special="all"))
