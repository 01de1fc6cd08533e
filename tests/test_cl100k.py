"""The cl100k tokens (context budgets, chunk sizes) come from a cache of tiktoken's parsed BPE ranks: the same
tokens as tiktoken's own load, and a damaged cache is parsed again, never trusted."""

from __future__ import annotations

import copy
import hashlib
import marshal
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from artifact_mcp.storage.index import cl100k

TEXTS = [
    "Hybrid search fuses BM25 and dense vectors.",
    "def parse_request(body: bytes) -> dict[str, int]:\n    return json.loads(body)\n",
    "naïve café 東京 Ελληνικά — emoji 🚀 and tabs\t\tand   spaces",
    "<|endoftext|> special tokens are text here <|fim_prefix|>",
    "a" * 3000,
]


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cl100k.encoding.cache_clear()
    cl100k.tokenizer.cache_clear()
    cl100k.llama_tokenizer.cache_clear()
    yield tmp_path
    cl100k.encoding.cache_clear()  # the next user loads from the real cache again
    cl100k.tokenizer.cache_clear()
    cl100k.llama_tokenizer.cache_clear()


def test_the_cached_ranks_give_tiktokens_own_tokens(cache_home: Path) -> None:
    path = cl100k._cache_file()
    assert path is not None and path.is_relative_to(cache_home) and not path.exists()
    parsed = cl100k._parsed()
    assert cl100k.encoding() is not None and path.exists()  # the first load writes the cache
    cl100k.encoding.cache_clear()
    cached = cl100k._from_cache(path)
    assert cached is not None and cached is not parsed
    assert cached.n_vocab == parsed.n_vocab
    for text in TEXTS:
        assert cached.encode(text, allowed_special="all") == parsed.encode(text, allowed_special="all")
        assert cached.decode(cached.encode(text, allowed_special="all")) == text
    assert cl100k.count_tokens(TEXTS[0]) == len(parsed.encode(TEXTS[0]))

    # Loaded from the cache, the encoding keeps no Python copy of its ranks (RSS), and still counts, truncates and
    # decodes the same; tiktoken's own registered instance is left whole.
    cl100k.encoding.cache_clear()
    loaded = cl100k.encoding()
    assert loaded is not parsed and loaded._mergeable_ranks is None
    for text in TEXTS:
        tokens = loaded.encode(text, allowed_special="all")
        assert tokens == parsed.encode(text, allowed_special="all") and loaded.decode(tokens) == text
    assert isinstance(parsed._mergeable_ranks, dict) and len(parsed._mergeable_ranks) > 100_000
    # It still pickles (a LlamaIndex splitter holding the tokenizer may be): by reference to encoding().
    assert pickle.loads(pickle.dumps(loaded)) is loaded and copy.deepcopy(loaded) is loaded
    restored = pickle.loads(pickle.dumps(cl100k.tokenizer()))
    assert restored(TEXTS[1]) == parsed.encode(TEXTS[1], allowed_special="all")
    other = subprocess.run(  # another process rebuilds it from the same cache
        [sys.executable, "-c", "import pickle, sys; enc = pickle.load(sys.stdin.buffer); "
                               "print(enc.encode(sys.argv[1], allowed_special='all'))", TEXTS[1]],
        input=pickle.dumps(loaded), capture_output=True, check=True,
    )
    assert other.stdout.decode().strip() == str(parsed.encode(TEXTS[1], allowed_special="all"))


def test_a_damaged_cache_is_parsed_again_and_rewritten(cache_home: Path) -> None:
    path = cl100k._cache_file()
    assert path is not None
    good = cl100k._parsed()
    cl100k._store(path, good)
    whole = path.read_bytes()
    assert cl100k._from_cache(path) is not None

    def rewrite(state: dict[str, object]) -> None:
        payload = marshal.dumps(state)
        path.write_bytes(hashlib.sha256(payload).digest() + payload)

    path.write_bytes(whole[: len(whole) // 2])  # cut short
    assert cl100k._from_cache(path) is None
    path.write_bytes(whole[:40] + bytes([whole[40] ^ 1]) + whole[41:])  # one bit flipped
    assert cl100k._from_cache(path) is None
    state = marshal.loads(whole[32:])
    rewrite({**state, "probe": [1, 2, 3]})  # whole, but not the ranks the probe was made with
    assert cl100k._from_cache(path) is None
    ranks = dict(state["mergeable_ranks"])
    del ranks[good.decode_single_token_bytes(state["probe"][3])]  # a rank the probe uses, missing
    rewrite({**state, "mergeable_ranks": ranks})
    assert cl100k._from_cache(path) is None
    rewrite({k: v for k, v in state.items() if k != "probe"})
    assert cl100k._from_cache(path) is None
    path.write_bytes(b"not a cache at all")
    assert cl100k._from_cache(path) is None

    enc = cl100k.encoding()  # falls back to the parse and replaces the bad file
    assert enc.encode(TEXTS[2]) == good.encode(TEXTS[2])
    assert path.read_bytes() == whole
