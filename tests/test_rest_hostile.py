"""Hostile input on the REST dialects, over real HTTP: every case answers a clear 4xx in JSON and writes nothing,
and the connection stays usable (a 500 with a traceback used to drop keep-alive)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_EMBEDDING
from tests.support_http import bearer, create_token, serve_http
from tests.test_stdio import TIMEOUT

ACME = "/v1/orgs/acme/workspaces/research/namespaces/main"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data = tmp_path_factory.mktemp("hostile") / "data"
    data.mkdir()
    token = create_token(data, "alice", ["acme/*/*"], ["write"])
    with serve_http(data, "--embedding-model", TEST_EMBEDDING) as port, httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=bearer(token), timeout=TIMEOUT) as c:
        yield c


def _total(c: httpx.Client) -> int:
    r = c.get(f"{ACME}/artifacts", params={"latest_only": "false", "include_expired": "true"})
    assert r.status_code == 200, r.text
    return r.json()["total"]


def _refused(r: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def _raw_json(c: httpx.Client, path: str, text: str, method: str = "POST") -> httpx.Response:
    """A JSON body sent as written (httpx would refuse to encode a lone surrogate itself)."""
    return c.request(method, path, content=text.encode(), headers={"content-type": "application/json"})


def _raw_upload(c: httpx.Client, filename: str, field: str, value: bytes, charset: str | None = None) -> httpx.Response:
    """A multipart upload written by hand, byte for byte: a `file` part named `filename` and one text field (httpx
    would percent-encode control characters in a filename and re-encode text)."""
    b = "rawBOUNDARY"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\r\nx\r\n"
            f"--{b}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n").encode() + value + (
            f"\r\n--{b}--\r\n").encode()
    content_type = f"multipart/form-data; boundary={b}" + (f"; charset={charset}" if charset else "")
    return c.post(f"{ACME}/artifacts/upload", content=body, headers={"content-type": content_type})


@pytest.mark.parametrize("body", [
    '{"name": "bad \\ud800", "content": "x"}',
    '{"name": "ok", "content": "x", "tags": ["t\\udfff"]}',
    '{"name": "ok", "content": "x", "metadata": {"k": "\\ud800"}}',
    '{"name": "ok", "content": "x", "metadata": {"\\ud800": 1}}',
    '{"name": "ok", "content": "x", "description": "lone \\ud83d here"}',
    '{"name": "ok", "content": "x \\ud800"}',
])
def test_lone_surrogates_are_422(client: httpx.Client, body: str) -> None:
    before = _total(client)
    detail = _refused(_raw_json(client, f"{ACME}/artifacts", body))["detail"]
    assert any("surrogate" in d["msg"] for d in detail), detail
    assert _total(client) == before  # and the same keep-alive connection still answers


@pytest.mark.parametrize(("field", "value"), [
    ("name", "a\x00b"), ("tags", ["ok", "t\x00"]), ("keywords", ["k\x07"]), ("file_name", "a\x00.txt"),
    ("created_by", "me\x1b[31m"), ("source", "x\x00"), ("source_tool", "\x7f"), ("mime_type", "text/plain\x00"),
])
def test_control_characters_are_422(client: httpx.Client, field: str, value: Any) -> None:
    before = _total(client)
    detail = _refused(client.post(f"{ACME}/artifacts", json={"name": "ok", "content": "x", field: value}))["detail"]
    assert any(d["loc"][:2] == ["body", field] and "control character" in d["msg"] for d in detail), detail
    assert _total(client) == before


def test_content_keeps_control_characters_byte_exact(client: httpx.Client) -> None:
    text = "col1\tcol2\x00\x1b[0m\r\n"
    r = client.post(f"{ACME}/artifacts", json={"name": "raw", "content": text})
    assert r.status_code == 201, r.text
    assert client.get(f"{ACME}/artifacts/{r.json()['artifact_id']}").json()["content"] == text


def test_thread_and_ids_refuse_control_characters(client: httpx.Client) -> None:
    before = _total(client)
    _refused(client.post(f"{ACME}/artifacts", json={"name": "ok", "content": "x", "thread_id": "t\x00"}))
    _refused(client.get(f"{ACME}/artifacts", params={"thread_id": "t\x01"}))
    assert client.get("/v1/orgs/ac%00me/workspaces/research/namespaces/main/artifacts").status_code == 422
    assert _total(client) == before


@pytest.mark.parametrize(("sent", "stored"), [
    ("../../etc/passwd", "passwd"), ("..\\..\\windows\\win.ini", "win.ini"), (".bashrc", "bashrc"),
    ("/abs/path/report.pdf", "report.pdf"), ("a/../../../b.txt", "b.txt"),
])
def test_upload_file_names_become_safe_base_names(client: httpx.Client, sent: str, stored: str) -> None:
    r = client.post(f"{ACME}/artifacts/upload", files={"file": (sent, b"bytes")})
    assert r.status_code == 201, r.text
    art = r.json()
    assert art["file_name"] == stored and art["name"] == stored
    # the same through the form field
    r = client.post(f"{ACME}/artifacts/upload", files={"file": ("x.bin", b"bytes")}, data={"file_name": sent})
    assert r.status_code == 201, r.text
    assert r.json()["file_name"] == stored


def test_upload_name_that_reduces_to_nothing_needs_a_name(client: httpx.Client) -> None:
    before = _total(client)
    detail = _refused(client.post(f"{ACME}/artifacts/upload", files={"file": ("../..", b"x")}))["detail"]
    assert "name is required" in detail[0]["msg"]
    assert _total(client) == before


def test_invalid_utf8_in_multipart_text_is_422(client: httpx.Client) -> None:
    before = _total(client)
    detail = _refused(_raw_upload(client, "a.txt", "description", b"caf\xe9 \xff\xfe"))["detail"]
    assert "utf-8" in detail[0]["msg"].lower(), detail
    assert _total(client) == before


def test_unknown_routes_are_json_404_and_wrong_methods_json_405(client: httpx.Client) -> None:
    r = client.get("/no/such/route")
    assert _refused(r, 404)["error"] == "not_found"
    r = client.get(f"{ACME}/nothing-here")
    assert _refused(r, 404)["error"] == "not_found"
    r = client.put(f"{ACME}/artifacts")
    body = _refused(r, 405)
    assert body["error"] == "method_not_allowed" and r.headers["allow"] and "PUT" in body["detail"]
    r = client.delete(f"{ACME}/threads/t1/artifacts")
    assert _refused(r, 405)["error"] == "method_not_allowed"


def test_put_updates_like_patch(client: httpx.Client) -> None:
    art = client.post(f"{ACME}/artifacts", json={"name": "doc", "content": "v1"}).json()
    r = client.put(f"{ACME}/artifacts/{art['artifact_id']}", json={"content": "v2", "expected_version": 1})
    assert r.status_code == 200, r.text
    assert r.json()["new_version"] is True and r.json()["artifact"]["version"] == 2
    stale = client.put(f"{ACME}/artifacts/{art['artifact_id']}", json={"content": "v3", "expected_version": 1})
    assert _refused(stale, 409)["error"] == "conflict"
    r = client.patch(f"{ACME}/artifacts/{art['artifact_id']}", json={"tags": ["in-place"]})
    assert r.status_code == 200 and r.json()["new_version"] is False


@pytest.mark.parametrize("filename", ["a\x01b.txt", "tab\tname.txt", "nul\x00name.txt"])
def test_control_characters_in_a_multipart_file_name_are_422(client: httpx.Client, filename: str) -> None:
    before = _total(client)
    detail = _refused(_raw_upload(client, filename, "name", b"given"))["detail"]
    assert "control character" in detail[0]["msg"], detail
    assert _total(client) == before


@pytest.mark.parametrize("body", [
    '{"name": "n", "content": "x", "wait_timeout_seconds": "inf"}',
    '{"name": "n", "content": "x", "wait_timeout_seconds": "nan"}',
    '{"name": "n", "content": "x", "ttl_seconds": 1e400}',
    '{"name": "n", "content": "x", "ttl_seconds": -1e400}',
])
def test_non_finite_numbers_are_422(client: httpx.Client, body: str) -> None:
    before = _total(client)
    _refused(_raw_json(client, f"{ACME}/artifacts", body))
    r = client.get(f"{ACME}/artifacts", params={"limit": "inf"})
    assert _refused(r)["detail"][0]["input"] == "inf"
    assert _total(client) == before


def test_unknown_multipart_charset_is_422(client: httpx.Client) -> None:
    before = _total(client)
    r = _raw_upload(client, "a.txt", "name", b"\xff\xfe", charset="bogus")
    assert "charset" in _refused(r)["detail"][0]["msg"]
    assert _total(client) == before


def test_thread_route_refuses_a_second_thread_in_the_query(client: httpx.Client) -> None:
    r = client.get(f"{ACME}/threads/t-one/artifacts", params={"thread_id": "t-two"})
    assert _refused(r)["detail"][0]["loc"] == ["query", "thread_id"]
    assert client.get(f"{ACME}/threads/t-one/artifacts", params={"thread_id": "t-one"}).status_code == 200
