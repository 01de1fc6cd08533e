"""`serve` caps glibc's malloc arenas (storage/heap.py): threads that allocate share two arenas instead of each
keeping one (and the memory it freed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import ctypes, sys, threading
from artifact_mcp.storage.heap import limit_arenas
if sys.argv[1] == "limited":
    assert limit_arenas()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.fopen.restype = ctypes.c_void_p
barrier = threading.Barrier(8)

def work():
    barrier.wait()  # all at once, so that they contend for arenas
    blocks = [libc.malloc(4096) for _ in range(2000)]
    for b in blocks:
        libc.free(b)

threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(out))
libc.fclose(ctypes.c_void_p(out))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_threads_share_at_most_two_arenas(tmp_path: Path) -> None:
    def arenas(mode: str) -> int:
        report = tmp_path / f"{mode}.xml"
        subprocess.run([sys.executable, "-c", PROBE, mode, str(report)], check=True, timeout=60)
        return report.read_text().count("<heap nr=")

    assert arenas("limited") <= 2
    assert arenas("default") > 2  # the probe does make threads take arenas of their own

