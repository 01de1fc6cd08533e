"""Index preparation in a child process, so it never holds the store process's GIL.

Chunking, lexical terms and (for some models) embedding are Python loops: in a worker thread of the process that
serves requests they hold the GIL for most of their run, and every request thread and the event loop wait for it
(CPython hands the GIL over every 5 ms). Measured with the `hash:384` model: a create's p50 went from ~21 to ~57 ms
while index jobs ran. In a child process they share only the CPU, and the child runs at a lower priority
(`NICE`), so requests win the cores too.

The child is `python -c …serve()` on the same interpreter: frames are pickles over its stdin and stdout, one
request (the batch's `PrepareInput`s) and one answer at a time. It is started on first use, and again after it died
(the batch it was working on fails, and its jobs are retried). It exits when its stdin closes, which happens when
the parent exits, however it exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import subprocess
import sys
import threading
from typing import IO, TYPE_CHECKING, Any

from artifact_mcp.storage.config import IndexConfig

if TYPE_CHECKING:  # the pipeline (LlamaIndex, the model) is imported by the child only: ~2 s of imports
    from artifact_mcp.storage.index.pipeline import Prepared, PrepareInput

log = logging.getLogger(__name__)

NICE = 10  # a child at nice 10 gets ~1/10 of a core that a request thread wants too


class ChildPreparer:
    """`Indexer.prepare_batch`, run in a child process. Thread-safe (one batch at a time)."""

    def __init__(self, config: IndexConfig) -> None:
        self.config = config
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        """Start the child and have it load the chunkers and the model (seconds, the first time)."""
        with self._lock:
            self._running()

    def __call__(self, inputs: list[PrepareInput]) -> list[Prepared]:
        with self._lock:
            proc = self._running()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                _send(proc.stdin, inputs)
                status, value = _receive(proc.stdout)
            except (EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
                self._stop()
                why = "closed (shutdown)" if self._closed else f"exited ({type(exc).__name__}: {exc})"
                raise RuntimeError(f"the index preparation process {why}") from exc
        if status != "ok":
            raise RuntimeError(value)
        return value

    def close(self) -> None:
        self._closed = True
        # No lock: a batch in progress is abandoned (its jobs stay `running`; the next owner requeues them).
        self._stop()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._closed:
            raise RuntimeError("the index preparation process is closed")
        if self._proc is None or self._proc.poll() is not None:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from artifact_mcp.storage.index.child import serve; serve()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
            )
            assert proc.stdin is not None
            _send(proc.stdin, self.config)
            self._proc = proc
            log.info("index preparation runs in process %d", proc.pid)
        return self._proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # Killed first: a thread blocked reading its answer holds the pipe's buffer lock until the read ends.
        proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("index preparation process %d did not exit", proc.pid)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.close()


def _send(stream: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(8, "little") + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    """One frame, read whole first: `pickle.load` on a pipe fails on empty buffers (numpy arrays with no rows)
    with a SystemError in CPython 3.11."""
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("the pipe closed")
    size = int.from_bytes(head, "little")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the pipe closed mid-frame")
    return pickle.loads(data)


def serve() -> None:
    """The child: read the config, warm up, then answer batches until stdin closes."""
    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    # Nothing else may write to the answer pipe: stray output goes to stderr, and stdin reads nothing.
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    with contextlib.suppress(OSError):
        os.nice(NICE)
    from artifact_mcp.storage.heap import limit_arenas

    limit_arenas()
    try:
        config: IndexConfig = _receive(requests)
    except EOFError:
        return
    from artifact_mcp.storage.index.pipeline import Indexer

    indexer = Indexer(config)
    indexer.warm_up()
    while True:
        try:
            inputs = _receive(requests)
        except EOFError:
            return
        try:
            answer: tuple[str, Any] = ("ok", indexer.prepare_batch(inputs))
        except Exception as exc:
            answer = ("error", f"{type(exc).__name__}: {exc}")
        try:
            _send(answers, answer)
        except (BrokenPipeError, OSError):
            return
