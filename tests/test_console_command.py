"""`artifact-mcp console --port`: the console on 127.0.0.1 for a local user whose agent runs a stdio server. It
joins the data directory the stdio server owns (forwarding to it), shows what the agent writes, and its actions
reach the agent's store."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from mcp.client.stdio import stdio_client

from tests.conftest import call, server_env
from tests.support_browser import chromium
from tests.support_console import shoot
from tests.support_http import create_token, free_port, stop, wait_for_port
from tests.test_stdio import TIMEOUT, open_client, server_command, stdio_params

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextmanager
def console(data_dir: Path, *args: str) -> Iterator[str]:
    log_path = data_dir.parent / "console-stderr.log"
    port = free_port()
    with log_path.open("ab") as errlog:
        proc = subprocess.Popen([server_command(), "console", "--port", str(port), "--data-dir", str(data_dir), *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog,
                                cwd=data_dir.parent, env=server_env())
    try:
        assert wait_for_port(proc, port, time.monotonic() + TIMEOUT), log_path.read_text()[-3000:]
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _browse(url: str, art_id: str, shots: Path) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.set_default_timeout(10_000)
        page.goto(url)  # / redirects to the console
        assert page.url == f"{url}/ui/"
        assert page.locator("[data-principal]").get_attribute("data-principal") == "local"
        page.goto(f"{url}/ui/artifacts")
        assert art_id in [e.get_attribute("data-artifact") for e in page.locator("[data-artifact]").all()]
        page.click("text=Agent findings")
        assert page.locator(".rendered h1").inner_text() == "Findings"
        shoot(page, shots, "console-command")
        page.click("button:has-text('Pin')")  # a write, forwarded to the stdio server's store
        page.wait_for_selector(".notice")


async def test_console_beside_a_stdio_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with (tmp_path / "stdio-stderr.log").open("w") as errlog:
        async with open_client(stdio_client(stdio_params(data, tmp_path), errlog=errlog)) as agent:
            with anyio.fail_after(TIMEOUT):
                made = await call(agent, "create_artifact", {"name": "Agent findings", "wait_for_index": True,
                                                              "content": "# Findings\n\nthe cache hit rate fell",
                                                              "mime_type": "text/markdown", "thread_id": "run-1"})
            with console(data, "--auth", "none") as url:
                async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as http:
                    found = await http.get("/ui/search", params={"q": "cache hit rate"})
                    assert found.status_code == 200
                    assert made["artifact_id"] in re.findall(r'data-artifact="(art_[0-9a-f]+)"', found.text)
                    # Something the agent writes now shows at once.
                    with anyio.fail_after(TIMEOUT):
                        later = await call(agent, "create_artifact", {"name": "Second", "content": "more",
                                                                       "thread_id": "run-1"})
                    thread = await http.get("/ui/threads/run-1")
                    assert later["artifact_id"] in thread.text and made["artifact_id"] in thread.text
                    # A page from another host name (DNS rebinding) is refused by a console without auth.
                    rebound = await http.get("/ui/artifacts", headers={"Host": "evil.example"})
                    assert rebound.status_code == 421 and made["artifact_id"] not in rebound.text
                    # Without auth, the forms still need the CSRF token.
                    forged = await http.post(f"/ui/artifacts/{made['artifact_id']}/pin", data={"pinned": "true"})
                    assert forged.status_code == 403
                await anyio.to_thread.run_sync(_browse, url, made["artifact_id"], tmp_path)
            with anyio.fail_after(TIMEOUT):
                got = await call(agent, "get_artifact", {"artifact_id": made["artifact_id"]})
            assert got["is_pinned"]  # the console's pin reached the agent's store
    log = (tmp_path / "console-stderr.log").read_text()
    assert "console on http://127.0.0.1:" in log


def test_console_help_names_the_flags() -> None:
    done = subprocess.run([server_command(), "console", "--help"], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0
    assert "--port" in done.stdout and "--auth" in done.stdout and "127.0.0.1" in done.stdout


def test_console_signs_in_with_tokens_by_default(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = create_token(data, "lee", ["default/default/default"], ["read"])
    with console(data) as url:
        http = httpx.Client(base_url=url, timeout=TIMEOUT)
        first = http.get("/ui/artifacts")
        assert first.status_code == 303 and first.headers["location"].startswith("/ui/login?next=")
        form = http.get(first.headers["location"])
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf
        signed = http.post("/ui/login", data={"csrf_token": csrf.group(1), "token": token, "next": "/ui/artifacts"})
        assert signed.status_code == 303 and signed.headers["location"] == "/ui/artifacts"
        page = http.get("/ui/artifacts")
        assert page.status_code == 200 and 'data-principal="lee"' in page.text
