"""Helpers for the console's browser tests: a seeded HTTP server, signing in through the form, screenshots."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, BrowserContext, Page

from tests.conftest import REPO
from tests.support_http import Server, bearer
from tests.test_stdio import TIMEOUT

SHOTS = REPO / "bench" / "results" / "console"
ACME = "/v1/orgs/acme/workspaces/research/namespaces/main"
GLOBEX = "/v1/orgs/globex/workspaces/ops/namespaces/main"
MARKER = "XSS-MARKER"

REPORT_V1 = "# Q3 revenue report\n\nQuarterly revenue grew by twelve percent.\n\n## Costs\n\nCosts were flat.\n"
REPORT_V2 = "# Q3 revenue report\n\nQuarterly revenue grew by fifteen percent.\n\n## Costs\n\nCosts were flat.\n"
XSS_HTML = (f'<h2>Hostile page</h2><script>console.log("{MARKER}-script"); alert(1)</script>'
            f'<img src="x" onerror="console.log(\'{MARKER}-onerror\'); alert(2)">'
            f'<a id="evil" href="javascript:console.log(\'{MARKER}-href\');alert(3)">click me</a>'
            f'<p onmouseover="alert(4)">hover</p><iframe src="javascript:alert(5)"></iframe>')
XSS_MD = (f"# Hostile markdown\n\n<script>alert('{MARKER}')</script>\n\n[click me](javascript:alert(6))\n\n"
          f"<img src=x onerror=\"console.log('{MARKER}-md')\">\n")
XSS_SVG = (f'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" onload="console.log(\'{MARKER}-svg\')">'
           f'<script>console.log("{MARKER}-svg-script"); alert(7)</script><rect width="40" height="40" fill="red"/>'
           '</svg>').encode()


class Rest:
    """The MechaMental REST API as one principal: how the tests put real data in the store."""

    def __init__(self, server: Server, who: str, prefix: str = ACME) -> None:
        self.http = httpx.Client(base_url=server.url + prefix, headers=bearer(server.tokens[who]), timeout=TIMEOUT)

    def create(self, **body: Any) -> dict[str, Any]:
        response = self.http.post("/artifacts", json={"wait_for_index": True, **body})
        assert response.status_code == 201, response.text
        return response.json()

    def upload(self, name: str, file_name: str, data: bytes, mime: str, wait: bool = True,
               **fields: str) -> dict[str, Any]:
        response = self.http.post("/artifacts/upload", files={"file": (file_name, data, mime)},
                                  data={"name": name, "wait_for_index": str(wait).lower(), **fields})
        assert response.status_code == 201, response.text
        return response.json()

    def update(self, artifact_id: str, **body: Any) -> dict[str, Any]:
        response = self.http.put(f"/artifacts/{artifact_id}", json={"wait_for_index": True, **body})
        assert response.status_code == 200, response.text
        return response.json()["artifact"]

    def get(self, artifact_id: str) -> dict[str, Any]:
        response = self.http.get(f"/artifacts/{artifact_id}", params={"max_chars": 0})
        assert response.status_code == 200, response.text
        return response.json()

    def exists(self, artifact_id: str) -> bool:
        return self.http.get(f"/artifacts/{artifact_id}", params={"max_chars": 0}).status_code == 200

    def wait(self, artifact_id: str, statuses: set[str]) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT
        while (art := self.get(artifact_id))["status"] not in statuses:
            assert time.monotonic() < deadline, f"{artifact_id} stayed {art['status']}"
            time.sleep(0.1)
        return art


def sign_in(browser: Browser, server: Server, who: str, **options: Any) -> tuple[BrowserContext, Page]:
    """A fresh browser context signed in with `who`'s token through the sign-in form."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **options)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(f"{server.url}/ui/")
    assert "/ui/login" in page.url, page.url  # not signed in: sent to the form
    page.fill("input[name=token]", server.tokens[who])
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/ui/")
    assert page.locator("[data-principal]").get_attribute("data-principal") == who
    return context, page


def shoot(page: Page, tmp_dir: Path, name: str) -> Path:
    """A full-page screenshot in the test's tmp dir, copied to bench/results/console/."""
    path = tmp_dir / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    return path


def csrf_of(page: Page) -> str:
    value = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert value
    return value


def make_pdf(text: str) -> bytes:
    from tests.test_chunking import make_pdf as pdf

    return pdf([text])


def messages(page: Page) -> tuple[list[str], list[str]]:
    """What the page logs to its console, and the dialogs it opens (each dismissed)."""
    logged: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: logged.append(m.text))

    def on_dialog(d: Any) -> None:
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    return logged, dialogs


def console_session(server: Server, who: str) -> httpx.Client:
    """An HTTP client holding `who`'s console session (signed in through the form, CSRF and all)."""
    http = httpx.Client(base_url=server.url, timeout=TIMEOUT)
    form = http.get("/ui/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token
    signed = http.post("/ui/login", data={"csrf_token": token.group(1), "token": server.tokens[who], "next": ""})
    assert signed.status_code == 303, signed.text
    return http


def seed(server: Server) -> dict[str, Any]:
    """The data every console test reads: two tenants, several content types, versions, a broken file, XSS."""
    ada, gus = Rest(server, "ada"), Rest(server, "gus", GLOBEX)
    report = ada.create(name="Q3 revenue report", content=REPORT_V1, mime_type="text/markdown", thread_id="q3-review",
                        tags=["finance", "q3"], artifact_type="report", source_tool="writer")
    report_v2 = ada.update(report["artifact_id"], content=REPORT_V2, mime_type="text/markdown")
    notes = ada.create(name="Meeting notes", content="Staffing notes: hire two engineers.", thread_id="q3-review",
                       tags=["people"])
    data = ada.create(name="Metrics", content={"revenue": {"q2": 100, "q3": 115}, "regions": ["eu", "us"]},
                      tags=["finance"])
    pdf = ada.upload("Board deck", "deck.pdf", make_pdf("Board deck about margins"), "application/pdf")
    code = ada.create(name="etl.py", content="def load(rows):\n    return [r for r in rows if r]\n",
                      file_name="etl.py", mime_type="text/x-python", artifact_type="code")
    html = ada.create(name="Hostile HTML", content=XSS_HTML, mime_type="text/html")
    md = ada.create(name="Hostile markdown", content=XSS_MD, mime_type="text/markdown")
    svg = ada.upload("Hostile SVG", "evil.svg", XSS_SVG, "image/svg+xml")
    broken = ada.upload("Broken PDF", "broken.pdf", b"%PDF-1.4\nthis is not really a pdf", "application/pdf",
                        wait=False)
    ada.wait(broken["artifact_id"], {"failed"})
    secret = gus.create(name="Globex merger plan", content="Globex revenue plan: confidential.", thread_id="q3-review")
    return {"report": report, "report_v2": report_v2, "notes": notes, "data": data, "pdf": pdf, "code": code,
            "html": html, "md": md, "svg": svg, "broken": broken, "secret": secret}
