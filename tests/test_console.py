"""The web console at /ui in a real browser (Debian's Chromium through Playwright) against a real
`artifact-mcp serve --transport http` with tokens from the CLI and data put in through the REST API: sign-in,
filters, search with the matched chunk highlighted, content by type, diffs, the actions and who may use them, CSRF,
tenant isolation, and stored XSS that never runs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.conftest import TEST_EMBEDDING, server_env
from tests.support_browser import chromium
from tests.support_console import MARKER, Rest, console_session, csrf_of, messages, seed, shoot, sign_in
from tests.support_http import Server, cli, create_token, serve_http
from tests.test_stdio import TIMEOUT


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("console") / "data"
    data.mkdir()
    tokens = {
        "ada": create_token(data, "ada", ["acme/research/main"], ["admin"]),
        "rita": create_token(data, "rita", ["acme/research/main"], ["read"]),
        "walt": create_token(data, "walt", ["acme/research/main"], ["write"]),
        "gus": create_token(data, "gus", ["globex/ops/main"], ["admin"]),
        "wanda": create_token(data, "wanda", ["acme/*/*"], ["read"]),  # no default scope: she chooses one
    }
    # One index attempt, so a broken file fails at once and the console can re-run its job.
    env = server_env(ARTIFACT_MCP_INDEX_MAX_ATTEMPTS="1")
    with serve_http(data, "--embedding-model", TEST_EMBEDDING, env=env) as port:
        yield Server(data, port, tokens)


@pytest.fixture(scope="module")
def seeded(server: Server) -> dict[str, Any]:
    return seed(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-shots")


def _ids(page: Page, selector: str = "[data-artifact]") -> list[str]:
    return [e.get_attribute("data-artifact") or "" for e in page.locator(selector).all()]


def test_sign_in_overview_and_filters(server: Server, seeded: dict[str, Any], browser: Browser, shots: Path) -> None:
    # A wrong token is refused on the form, with a message that says what to paste.
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/ui/artifacts")
    assert "/ui/login" in page.url
    page.fill("input[name=token]", "amcp_000000000000_wrong")
    page.click("button[type=submit]")
    assert "not valid" in page.locator("[role=alert]").inner_text()
    shoot(page, shots, "login")
    context.close()

    context, page = sign_in(browser, server, "ada")
    logged: list[str] = []
    page.on("console", lambda m: logged.append(m.text))
    cookie = next(c for c in context.cookies() if c["name"] == "amcp_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert server.tokens["ada"] not in cookie["value"]  # the session carries the token's id, never its secret
    assert page.locator("[data-stat=artifacts]").inner_text() == "9"
    assert page.locator("[data-stat=failed]").inner_text() == "1"
    shoot(page, shots, "overview")

    page.click("nav >> text=Artifacts")
    page.wait_for_url("**/ui/artifacts")
    listed = _ids(page)
    assert len(listed) == 9 and seeded["secret"]["artifact_id"] not in listed
    assert listed[0] == seeded["broken"]["artifact_id"]  # newest first
    shoot(page, shots, "artifacts")

    page.fill("input[name=tags]", "finance")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*tags=finance.*"))
    assert set(_ids(page)) == {seeded["report_v2"]["artifact_id"], seeded["data"]["artifact_id"]}
    page.goto(f"{server.url}/ui/artifacts?thread_id=q3-review&artifact_type=report")
    assert _ids(page) == [seeded["report_v2"]["artifact_id"]]
    page.goto(f"{server.url}/ui/artifacts?status=failed")
    assert _ids(page) == [seeded["broken"]["artifact_id"]]
    page.goto(f"{server.url}/ui/artifacts?status=bogus")
    assert "status" in page.locator("[role=alert]").inner_text()
    # htmx runs under the strict CSP (nothing of ours is inline), and the pages trip no CSP violation.
    assert page.evaluate("typeof htmx") == "object"
    assert not [m for m in logged if "Content Security Policy" in m], logged
    context.close()


def test_cursor_paging(server: Server, seeded: dict[str, Any]) -> None:
    # 50 a page in the console: the REST list pages the same store; here the console's own Next link is followed.
    walt = Rest(server, "walt")
    made = [walt.create(name=f"bulk {i}", content=f"bulk item {i}", thread_id="bulk", wait_for_index=False)
            for i in range(55)]
    jar = console_session(server, "walt")
    first = jar.get("/ui/artifacts", params={"thread_id": "bulk"})
    assert first.status_code == 200
    ids = re.findall(r'data-artifact="(art_[0-9a-f]+)"', first.text)
    assert len(ids) == 50
    next_link = re.search(r'rel="next" href="([^"]+)"', first.text)
    assert next_link
    second = jar.get(next_link.group(1).replace("&amp;", "&"))
    more = re.findall(r'data-artifact="(art_[0-9a-f]+)"', second.text)
    assert len(more) == 5 and not set(ids) & set(more)
    assert set(ids + more) == {m["artifact_id"] for m in made}
    assert 'rel="next"' not in second.text
    assert ids + more == [m["artifact_id"] for m in reversed(made)]  # newest first
    # Oldest first: the same artifacts in the other order, through the cursor too.
    first = jar.get("/ui/artifacts", params={"thread_id": "bulk", "sort": "oldest"})
    next_link = re.search(r'rel="next" href="([^"]+)"', first.text)
    assert next_link and "sort=oldest" in next_link.group(1)
    second = jar.get(next_link.group(1).replace("&amp;", "&"))
    oldest = re.findall(r'data-artifact="(art_[0-9a-f]+)"', first.text + second.text)
    assert oldest == [m["artifact_id"] for m in made]
    # A cursor belongs to its sort: reused with the other one, it is refused, not misread.
    cursor = re.search(r"cursor=([^&\"]+)", next_link.group(1))
    assert cursor
    reused = httpx.URL("?c=" + cursor.group(1)).params["c"]
    mixed = jar.get("/ui/artifacts", params={"thread_id": "bulk", "cursor": reused})
    assert mixed.status_code == 422


def test_search_highlights_the_matched_chunk(server: Server, seeded: dict[str, Any], browser: Browser,
                                             shots: Path) -> None:
    context, page = sign_in(browser, server, "ada")
    page.click("nav >> text=Search")
    page.fill("input[name=q]", "quarterly revenue")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*q=quarterly.*"))
    first = page.locator("ol.hits > li").first
    assert first.get_attribute("data-artifact") == seeded["report_v2"]["artifact_id"]
    marks = [m.lower() for m in first.locator("blockquote.chunk mark").all_inner_texts()]
    assert "quarterly" in marks and "revenue" in marks
    assert "fifteen percent" in first.locator("blockquote.chunk").inner_text()
    assert re.fullmatch(r"score [01]\.\d{3}", first.locator(".score").inner_text())
    # The other tenant's "Globex revenue plan" is never among the hits.
    assert seeded["secret"]["artifact_id"] not in _ids(page, "ol.hits > li")
    shoot(page, shots, "search")
    context.close()


def test_markdown_json_code_and_pdf(server: Server, seeded: dict[str, Any], browser: Browser, shots: Path) -> None:
    context, page = sign_in(browser, server, "rita")
    page.goto(f"{server.url}/ui/artifacts/{seeded['report_v2']['artifact_id']}")
    assert page.locator(".rendered h1").inner_text() == "Q3 revenue report"
    assert page.locator(".rendered h2").inner_text() == "Costs"
    assert "writer" in page.locator("dl.meta").nth(1).inner_text()  # provenance
    jobs = page.locator("table.jobs tbody tr")
    assert jobs.count() >= 2 and "succeeded" in jobs.first.inner_text()
    shoot(page, shots, "artifact-markdown")

    page.goto(f"{server.url}/ui/artifacts/{seeded['data']['artifact_id']}")
    tree = page.locator(".json")
    assert '"q3"' in tree.inner_text() and "115" in tree.inner_text()
    assert tree.locator("details").count() >= 3  # foldable

    page.goto(f"{server.url}/ui/artifacts/{seeded['code']['artifact_id']}")
    assert page.locator(".rendered .hl .k, .rendered .hl .kd").first.inner_text() in ("def", "return")

    page.goto(f"{server.url}/ui/artifacts/{seeded['pdf']['artifact_id']}")
    frame = page.locator("iframe.pdf")
    src = frame.get_attribute("src")
    assert src and src.endswith(f"/artifacts/{seeded['pdf']['artifact_id']}/raw")
    raw = page.request.get(server.url + src)
    assert raw.status == 200 and raw.headers["content-type"] == "application/pdf"
    assert raw.headers["content-disposition"].startswith("inline") and raw.body().startswith(b"%PDF")
    assert "frame-ancestors 'self'" in raw.headers["content-security-policy"]
    page.wait_for_timeout(800)  # the browser's PDF viewer draws the page
    shoot(page, shots, "artifact-pdf")
    download = page.request.get(f"{server.url}/ui/artifacts/{seeded['pdf']['artifact_id']}/download")
    assert download.headers["content-disposition"].startswith("attachment") and download.body() == raw.body()
    context.close()


def test_diff_two_versions(server: Server, seeded: dict[str, Any], browser: Browser, shots: Path) -> None:
    context, page = sign_in(browser, server, "rita")
    page.goto(f"{server.url}/ui/artifacts/{seeded['report_v2']['artifact_id']}")
    page.click("text=Compare versions")
    page.wait_for_url("**/diff?**")
    assert page.locator(".d-del").all_inner_texts() == ["-Quarterly revenue grew by twelve percent."]
    assert page.locator(".d-add").all_inner_texts() == ["+Quarterly revenue grew by fifteen percent."]
    shoot(page, shots, "diff")
    # The same version on both sides: nothing differs, and the page says so.
    v1 = seeded["report"]["artifact_id"]
    page.goto(f"{server.url}/ui/artifacts/{v1}/diff?a={v1}&b={v1}")
    assert "have the same text" in page.content()
    page.goto(f"{server.url}/ui/artifacts/{v1}/diff?a={seeded['notes']['artifact_id']}")
    assert "is not a version of this artifact" in page.locator("[role=alert]").inner_text()
    context.close()


def test_admin_promotes_and_the_source_is_listed(server: Server, seeded: dict[str, Any], browser: Browser,
                                                 shots: Path) -> None:
    art_id = seeded["notes"]["artifact_id"]
    context, page = sign_in(browser, server, "ada")
    page.goto(f"{server.url}/ui/artifacts/{art_id}")
    page.click("text=Promote to source")
    page.wait_for_selector(".notice")
    assert "promoted" in page.locator(".notice").inner_text().lower()
    assert Rest(server, "ada").get(art_id)["promoted_to_source_id"]
    # The access log names who did it (the session's principal), never the token.
    promoted = [line for line in server.log.splitlines() if f"POST /ui/artifacts/{art_id}/promote" in line]
    assert promoted and '"principal": "ada"' in promoted[-1] and server.tokens["ada"] not in server.log
    page.click("nav >> text=Sources")
    page.wait_for_url("**/ui/sources")
    assert _ids(page) == [art_id]
    shoot(page, shots, "sources")
    context.close()


def test_reader_sees_no_buttons_and_is_refused(server: Server, seeded: dict[str, Any], browser: Browser) -> None:
    art_id = seeded["code"]["artifact_id"]
    context, page = sign_in(browser, server, "rita")
    page.goto(f"{server.url}/ui/artifacts/{art_id}")
    assert page.locator("text=Download").count() == 1
    for label in ("Promote to source", "Delete (all versions)", "Pin"):
        assert page.locator(f"button:has-text('{label}')").count() == 0, label
    assert page.locator("summary:has-text('Delete')").count() == 0
    # Her own, valid CSRF token and session: still 403, and nothing changed.
    token = csrf_of(page)
    for action, form in (("promote", {}), ("delete", {}), ("pin", {"pinned": "true"})):
        refused = page.request.post(f"{server.url}/ui/artifacts/{art_id}/{action}",
                                    form={"csrf_token": token, **form})
        assert refused.status == 403, (action, refused.status)
        assert "permission" in refused.text()
    after = Rest(server, "ada").get(art_id)
    assert after["promoted_to_source_id"] is None and not after["is_pinned"]
    context.close()


def test_forged_posts_are_refused(server: Server, seeded: dict[str, Any], browser: Browser) -> None:
    art_id = seeded["code"]["artifact_id"]
    context, page = sign_in(browser, server, "ada")
    page.goto(f"{server.url}/ui/artifacts/{art_id}")
    good = csrf_of(page)
    url = f"{server.url}/ui/artifacts/{art_id}/pin"
    for form, headers in (({"pinned": "true"}, {}),  # no CSRF token
                          ({"pinned": "true", "csrf_token": "forged"}, {}),  # a wrong one
                          ({"pinned": "true", "csrf_token": good}, {"Origin": "http://evil.example"})):
        refused = page.request.post(url, form=form, headers=headers)
        assert refused.status == 403 and "nothing was changed" in refused.text(), (form, headers)
    assert not Rest(server, "ada").get(art_id)["is_pinned"]
    # Without the browser's cookies (another site's form cannot send SameSite=Strict ones): no session, refused.
    bare = httpx.post(url, data={"pinned": "true", "csrf_token": good}, timeout=TIMEOUT)
    assert bare.status_code == 403
    # A bearer token on a POST without the form's CSRF token is refused too.
    api = httpx.post(url, data={"pinned": "true"}, headers={"Authorization": f"Bearer {server.tokens['ada']}"},
                     timeout=TIMEOUT)
    assert api.status_code == 403
    assert not Rest(server, "ada").get(art_id)["is_pinned"]
    # The real button works.
    page.click("button:has-text('Pin')")
    page.wait_for_selector(".notice")
    assert Rest(server, "ada").get(art_id)["is_pinned"]
    page.click("button:has-text('Unpin')")
    page.wait_for_selector("button:has-text('Pin')")
    assert not Rest(server, "ada").get(art_id)["is_pinned"]
    context.close()


def test_other_tenant_sees_nothing(server: Server, seeded: dict[str, Any], browser: Browser) -> None:
    context, page = sign_in(browser, server, "gus")
    assert page.locator("[data-stat=artifacts]").inner_text() == "1"
    page.goto(f"{server.url}/ui/artifacts")
    assert _ids(page) == [seeded["secret"]["artifact_id"]]
    page.goto(f"{server.url}/ui/search?q=revenue")
    assert _ids(page, "ol.hits > li") == [seeded["secret"]["artifact_id"]]
    page.goto(f"{server.url}/ui/threads/q3-review")
    assert _ids(page) == [seeded["secret"]["artifact_id"]]
    for path in ("", "/raw", "/download", "/diff"):
        response = page.goto(f"{server.url}/ui/artifacts/{seeded['report_v2']['artifact_id']}{path}")
        assert response is not None and response.status == 404, path
        assert "Q3 revenue" not in page.content()
    context.close()


def test_stored_xss_never_runs(server: Server, seeded: dict[str, Any], browser: Browser, shots: Path) -> None:
    context, page = sign_in(browser, server, "ada")
    logged, dialogs = messages(page)
    for key in ("html", "md", "svg"):
        response = page.goto(f"{server.url}/ui/artifacts/{seeded[key]['artifact_id']}")
        assert response is not None
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
        page.wait_for_timeout(300)
        rendered = page.locator("section.content")
        assert rendered.locator("script").count() == 0
        assert rendered.locator("[onerror], [onload], [onmouseover]").count() == 0
        assert rendered.locator("a[href^='javascript']").count() == 0
        if key == "html":
            shoot(page, shots, "artifact-xss")
            page.click("text=click me")
            page.hover("text=hover")
            # The source is shown as text, escaped.
            assert "<script>" in (page.locator("details pre").text_content() or "")
    assert page.locator("section.content img.preview").count() == 1  # the SVG, as an image only
    # Opened directly, the stored files are sandboxed documents: their scripts do not run either.
    for key in ("svg", "html"):
        raw = page.goto(f"{server.url}/ui/artifacts/{seeded[key]['artifact_id']}/raw")
        assert raw is not None and raw.headers["content-security-policy"].startswith("sandbox")
        page.wait_for_timeout(300)
    assert not dialogs, dialogs
    assert not [m for m in logged if MARKER in m], logged
    context.close()


def test_rerun_failed_index_job(server: Server, seeded: dict[str, Any], browser: Browser, shots: Path) -> None:
    art_id = seeded["broken"]["artifact_id"]
    context, page = sign_in(browser, server, "walt")
    page.goto(f"{server.url}/ui/artifacts/{art_id}")
    assert page.locator("table.jobs tbody tr").count() == 1
    assert "failed" in page.locator("table.jobs tbody tr").first.inner_text()
    shoot(page, shots, "artifact-failed-job")
    page.click("text=Re-run index job")
    page.wait_for_selector(".notice")
    assert "queued" in page.locator(".notice").inner_text()
    Rest(server, "walt").wait(art_id, {"failed"})  # the file is still broken: the new job fails again
    page.reload()
    rows = page.locator("table.jobs tbody tr")
    assert rows.count() == 2  # the new job beside the old one, newest first, with its own attempts and error
    newest = rows.first.inner_text()
    assert "failed" in newest and "cannot read PDF" in newest
    assert page.locator("text=Re-run index job").count() == 1
    # An artifact whose index job succeeded has nothing to re-run: a clear 422, nothing queued.
    refused = page.request.post(f"{server.url}/ui/artifacts/{seeded['code']['artifact_id']}/reindex",
                                form={"csrf_token": csrf_of(page)})
    assert refused.status == 422 and "nothing to re-run" in refused.text()
    context.close()


def test_generate_thread_summary_and_timeline(server: Server, seeded: dict[str, Any], browser: Browser,
                                              shots: Path) -> None:
    context, page = sign_in(browser, server, "walt")
    page.click("nav >> text=Threads")
    page.wait_for_url("**/ui/threads")
    assert "q3-review" in page.locator("table.list").inner_text()
    page.click("text=q3-review")
    page.wait_for_url("**/ui/threads/q3-review")
    timeline = _ids(page, "ol.timeline > li")
    assert set(timeline) >= {seeded["report_v2"]["artifact_id"], seeded["notes"]["artifact_id"]}
    assert seeded["secret"]["artifact_id"] not in timeline
    shoot(page, shots, "thread")
    page.select_option("select[name=document_type]", "report")
    page.click("button:has-text('Generate')")
    page.wait_for_url(re.compile(r".*/ui/artifacts/art_[0-9a-f]+\?notice=.*"))
    new_id = page.url.split("/ui/artifacts/")[1].split("?")[0]
    # The page follows the job by itself (htmx polling) until the document is written: no reload.
    arrived = page.locator("#art .badge").first.inner_text()
    assert arrived in ("processing", "completed")
    assert page.locator("#art.live").count() == (arrived == "processing")
    page.wait_for_selector(".rendered h1, .rendered h2", timeout=30_000)
    assert page.locator("#art.live").count() == 0  # polling stops with the job
    assert page.locator("#art .badge").first.inner_text() == "completed"
    done = Rest(server, "walt").get(new_id)
    assert done["status"] == "completed" and done["document_type"] == "report" and done["thread_id"] == "q3-review"
    assert "Q3 revenue report" in page.locator(".rendered").inner_text()
    context.close()


def test_delete_and_revoked_session(server: Server, seeded: dict[str, Any], browser: Browser) -> None:
    data = server.data_dir
    temp = create_token(data, "tmp-admin", ["acme/research/main"], ["admin"])
    server.tokens["tmp-admin"] = temp
    victim = Rest(server, "ada").create(name="Throwaway", content="to be deleted")
    context, page = sign_in(browser, server, "tmp-admin")
    page.goto(f"{server.url}/ui/artifacts/{victim['artifact_id']}")
    assert not page.locator("button:has-text('Delete (all versions)')").is_visible()  # one more click to confirm
    page.click("summary:has-text('Delete')")
    page.click("button:has-text('Delete (all versions)')")
    page.wait_for_url("**/ui/artifacts?notice=*")
    assert "deleted 1 version" in page.locator(".notice").inner_text()
    assert not Rest(server, "ada").exists(victim["artifact_id"])
    # Revoking the token ends its console sessions at once.
    token_id = temp.split("_")[1]
    assert cli(data, "token", "revoke", token_id).returncode == 0
    page.goto(f"{server.url}/ui/artifacts")
    assert "/ui/login" in page.url
    context.close()


def test_reading_works_without_javascript(server: Server, seeded: dict[str, Any], browser: Browser) -> None:
    context, page = sign_in(browser, server, "rita", java_script_enabled=False)
    page.goto(f"{server.url}/ui/artifacts?tags=finance")
    assert set(_ids(page)) == {seeded["report_v2"]["artifact_id"], seeded["data"]["artifact_id"]}
    page.click("text=Q3 revenue report")
    assert page.locator(".rendered h1").inner_text() == "Q3 revenue report"
    page.goto(f"{server.url}/ui/search?q=margins")
    assert _ids(page, "ol.hits > li")[0] == seeded["pdf"]["artifact_id"]
    context.close()


def test_a_token_without_default_scope_chooses_one(server: Server, seeded: dict[str, Any]) -> None:
    http = console_session(server, "wanda")
    chooser = http.get("/ui/")
    assert chooser.status_code == 200 and "Choose a scope" in chooser.text and "acme/*/*" in chooser.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', chooser.text)
    assert csrf
    for scope, status in (("globex/ops/main", 403), ("acme/*/main", 422), ("nonsense", 422)):
        refused = http.post("/ui/scope", data={"csrf_token": csrf.group(1), "scope": scope})
        assert refused.status_code == status, (scope, refused.status_code)
        assert "amcp_scope" not in refused.headers.get("set-cookie", "")
    chosen = http.post("/ui/scope", data={"csrf_token": csrf.group(1), "scope": "acme/research/main"})
    assert chosen.status_code == 303
    listed = http.get("/ui/artifacts", params={"tags": "finance"})
    assert seeded["report_v2"]["artifact_id"] in listed.text and seeded["secret"]["artifact_id"] not in listed.text
    assert 'class="inline scope-switch"' in listed.text  # she may switch again from the header
    # A scope cookie forged to point outside her grants is ignored: the chooser again, never the other tenant.
    http.cookies.set("amcp_scope", "globex/ops/main", domain="127.0.0.1", path="/ui")
    forged = http.get("/ui/artifacts")
    assert "Choose a scope" in forged.text and seeded["secret"]["artifact_id"] not in forged.text
    # One concrete grant: nothing to switch.
    assert 'scope-switch' not in console_session(server, "gus").get("/ui/").text


def test_unknown_pages_and_bad_ids_are_pages_not_5xx(server: Server, seeded: dict[str, Any]) -> None:
    http = console_session(server, "rita")
    for path, status in (("/ui/nope", 404), ("/ui/artifacts/art_nope", 422),
                         (f"/ui/artifacts/art_{'0' * 32}", 404), ("/ui/threads/bad%20id", 422),
                         ("/ui/artifacts?cursor=garbage", 422), ("/ui/search?q=" + "x" * 5000, 422)):
        response = http.get(path)
        assert response.status_code == status, (path, response.status_code)
        assert response.headers["content-type"].startswith("text/html")
        assert "content-security-policy" in response.headers
    # The login form is CSRF-protected too, and a bad sign-in changes nothing.
    assert httpx.post(f"{server.url}/ui/login", data={"token": server.tokens["rita"]},
                      timeout=TIMEOUT).status_code == 403
