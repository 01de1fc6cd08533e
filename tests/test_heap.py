"""`serve` caps glibc's malloc arenas (storage/heap.py): threads that allocate share two arenas instead of each
keeping one (and the memory it freed)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import ctypes, sys, threading
from artifact_mcp.storage.heap import limit_arenas
if sys.argv[1] == "limited":
    print(limit_arenas(2))
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.fopen.restype = ctypes.c_void_p
barrier = threading.Barrier(8)

def work():
    barrier.wait()  # all alive at once: no thread ends (and frees its arena for another) before the others start
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


GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt")
def test_threads_share_at_most_two_arenas(tmp_path: Path) -> None:
    def arenas(mode: str, **extra: str) -> tuple[int, str]:
        report = tmp_path / f"{mode}.xml"
        env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")} | extra
        done = subprocess.run([sys.executable, "-c", PROBE, mode, str(report)], check=True, timeout=60, env=env,
                              capture_output=True, text=True)
        return report.read_text().count("<heap nr="), done.stdout.strip()

    assert arenas("limited") in ((1, "True"), (2, "True"))
    assert arenas("default")[0] > 2  # the probe does make threads take arenas of their own
    # An operator's own setting is left alone.
    assert arenas("limited", MALLOC_ARENA_MAX="3") == (3, "False")

