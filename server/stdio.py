"""The stdio transport, with a stdin that a shutdown never waits on.

The SDK reads stdin through `anyio.wrap_file`, i.e. in a non-daemon worker thread that a cancel cannot
abandon: on SIGTERM while the agent still holds the pipe open, the server would hang until EOF (and the
interpreter would then wait for that thread at exit), keeping other processes from taking the store over.
Here stdin is read by a daemon thread that hands lines to the event loop, so cancelling the server ends it.
"""

from __future__ import annotations

import fcntl
import io
import os
import threading
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
from mcp.server import MCPServer
from mcp.server.stdio import stdio_server

_EOF = ""


class StdinLines:
    """Async iterator of text lines from a file descriptor, read by a daemon thread."""

    def __init__(self, fd: int) -> None:
        self._fp = io.TextIOWrapper(os.fdopen(fd, "rb", buffering=1 << 16, closefd=False), encoding="utf-8",
                                    errors="replace")
        # One line in flight at a time: back-pressure, so a fast client cannot make us buffer without bound.
        self._send, self._recv = anyio.create_memory_object_stream[str](1)
        self._thread: threading.Thread | None = None

    @classmethod
    def claim_stdin(cls) -> StdinLines:
        """Serve fd 0 from a private duplicate and point fd 0 at /dev/null, as the SDK does, so handlers and
        child processes reading stdin see EOF instead of eating protocol bytes."""
        private = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            os.dup2(devnull, 0)
        finally:
            os.close(devnull)
        return cls(private)

    def _pump(self, token: Any) -> None:
        try:
            while True:
                line = self._fp.readline()
                anyio.from_thread.run(self._send.send, line, token=token)
                if line == _EOF:
                    return
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, RuntimeError):
            return  # the server has stopped listening, or the event loop is gone

    def __aiter__(self) -> StdinLines:
        if self._thread is None:
            token = anyio.lowlevel.current_token()
            self._thread = threading.Thread(target=self._pump, args=(token,), name="stdin reader", daemon=True)
            self._thread.start()
        return self

    async def __anext__(self) -> str:
        line = await self._recv.receive()
        if line == _EOF:
            raise StopAsyncIteration
        return line


async def run_stdio(app: MCPServer) -> None:
    """`app.run_stdio_async()`, but with `StdinLines` for stdin."""
    stdin: Any = StdinLines.claim_stdin()
    async with stdio_server(stdin=stdin) as (read_stream, write_stream):
        low = app._lowlevel_server
        await low.run(read_stream, write_stream, low.create_initialization_options())
