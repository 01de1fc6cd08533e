"""ONNX Runtime sessions of the bundled model, and opening one ahead of need.

Opening the fp32 session takes ~0.15 s (graph optimisation and weights), and ONNX Runtime releases the GIL while
it does (measured: a Python loop ran at full speed beside it). So a process that will answer queries starts it on
a thread as its store begins to open (`preload`): it overlaps the imports and the catalog opening that opening
the store costs, instead of following them. The embedding then takes the session that is ready (`session`).
Imports neither LlamaIndex nor, until a session is opened, ONNX Runtime.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from artifact_mcp.storage.index import model_spec
from artifact_mcp.storage.index.onnx.cache import model_file

log = logging.getLogger(__name__)

_lock = threading.Lock()
_opening: dict[tuple[str, str, str | None], Future[Any]] = {}
# Sessions already handed out: the embedding that took one is shared by the process (embeddings.shared_model), so
# a later store's preload of the same model would open one nobody takes.
_taken: set[tuple[str, str, str | None]] = set()


def cores() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def threads(variant: str) -> int:
    """Threads per run. fp32 gives a batch all the cores (ONNX Runtime releases the GIL while it computes, so the
    event loop still runs). int8 embeds one text at a time (`OnnxEncoder.encode`), and a one-text run
    is too small to share: one thread per run, and as many runs at once as there are cores. Measured (2 cores,
    1,400 SciFact chunks): int8 on 2 threads per run 116.6 chunks/s, two 1-thread runs at once 187.6 (fp32 85.2
    either way); a query p50 2.6 ms on 2 threads, 1.98 on one."""
    return 1 if variant == "int8" else cores()


def _open(model_dir: Path, variant: str, cache_dir: Path | None) -> Any:
    import onnxruntime as ort

    path = model_file(model_dir, variant, cache_dir)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads(variant)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # its warnings about unused initialisers are not ours to act on
    # No busy-waiting between operators. ORT's spinning threads kept both cores busy after each run, and a
    # query's next step, numpy's dense scoring on OpenBLAS's two threads, fought them for the cores: a query
    # embedding followed by a 100k x 384 scoring took 7.2 + 13.1 ms p50 spinning, 5.8 + 5.0 ms not (300
    # SciFact queries, one process, 2 cores). Batches of 16 chunks embed at the same rate either way
    # (51 chunks/s both).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _key(model_dir: Path, variant: str, cache_dir: Path | None) -> tuple[str, str, str | None]:
    return str(model_dir), variant, str(cache_dir) if cache_dir is not None else None


def session(model_dir: Path, variant: str, cache_dir: Path | None) -> Any:
    """The session `preload` started for these (waiting for it to be ready), else a new one. A preloaded session
    is handed out once; its errors (a model file that cannot be built) are raised here, as opening would."""
    key = _key(model_dir, variant, cache_dir)
    with _lock:
        pending = _opening.pop(key, None)
        _taken.add(key)
    if pending is not None:
        return pending.result()
    return _open(model_dir, variant, cache_dir)


def _onnx_model(spec: str, cache_dir: str | None) -> tuple[Path, str, Path | None] | None:
    """(weights, variant, cache) of a model setting that is an ONNX variant of the default model whose weights
    are here; None for any other."""
    from artifact_mcp.storage.index.onnx import weights

    try:
        kind, variant = model_spec.parse(spec)
    except ValueError:
        return None  # refused, with the choices, when the model is built
    if kind != "default" or variant == "torch":
        return None
    cache = Path(cache_dir) if cache_dir else None
    model_dir = weights.find_weights(cache)
    return None if model_dir is None else (model_dir, variant, cache)


def preload(spec: str, cache_dir: str | None) -> bool:
    """Start opening the session of the model setting `spec` on a thread, if it is an ONNX variant of the default
    model whose weights are here (else nothing: other models load as they always do, and unprepared weights are
    reported when the model is built). Whether it started."""
    found = _onnx_model(spec, cache_dir)
    if found is None:
        return False
    model_dir, variant, cache = found
    key = _key(model_dir, variant, cache)
    future: Future[Any] = Future()
    with _lock:
        if key in _opening or key in _taken:
            return key in _opening
        _opening[key] = future

    def run() -> None:
        try:
            future.set_result(_open(model_dir, variant, cache))
        except BaseException as exc:  # handed to whoever takes the session
            log.debug("preloading the %s embedding session failed: %s", variant, exc)
            future.set_exception(exc)

    threading.Thread(target=run, name="onnx-session-preload", daemon=True).start()
    return True


def discard(spec: str, cache_dir: str | None) -> None:
    """Forget the session `preload` started for `spec`: the store opens another model (model_spec.sticky_default),
    and nobody would take it."""
    found = _onnx_model(spec, cache_dir)
    if found is not None:
        with _lock:
            _opening.pop(_key(*found), None)
