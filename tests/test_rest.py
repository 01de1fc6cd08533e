"""The REST mirror over real HTTP on 127.0.0.1: every route's happy path, every auth path (401 / 403), the 422
`detail` shape, 404, multipart upload and download round trip, X-API-Key, and the request size limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_EMBEDDING
from tests.support_http import bearer, cli, create_token, serve_http
from tests.test_stdio import TIMEOUT

MAX_UPLOAD = 64 * 1024
ACME = "/v1/orgs/acme/workspaces/research/namespaces/main"
BINARY = bytes(range(256)) * 8 + b"\x00tail"


class Server:
    def __init__(self, data_dir: Path, port: int, tokens: dict[str, str]) -> None:
        self.data_dir, self.port, self.tokens = data_dir, port, tokens
        self.base = f"http://127.0.0.1:{port}"

    def client(self, who: str | None = "alice", **headers: str) -> httpx.Client:
        auth = bearer(self.tokens[who]) if who else {}
        return httpx.Client(base_url=self.base, headers={**auth, **headers}, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("rest") / "data"
    data.mkdir()
    tokens = {
        "alice": create_token(data, "alice", ["acme/*/*"], ["write"]),
        "reader": create_token(data, "reader", ["acme/research/main"], ["read"]),
        "boss": create_token(data, "boss", ["acme/*/*"], ["admin"]),
        "revoked": create_token(data, "gone", ["acme/*/*"], ["write"]),
    }
    token_id = tokens["revoked"].removeprefix("amcp_").split("_")[0]
    done = cli(data, "token", "revoke", token_id)
    assert done.returncode == 0, done.stderr
    with serve_http(data, "--embedding-model", TEST_EMBEDDING, "--max-upload-bytes", str(MAX_UPLOAD)) as port:
        yield Server(data, port, tokens)


@pytest.fixture
def alice(server: Server) -> Iterator[httpx.Client]:
    with server.client("alice") as c:
        yield c


def _create(c: httpx.Client, **body: Any) -> dict[str, Any]:
    r = c.post(f"{ACME}/artifacts", json={"name": "note", "content": "some text", **body})
    assert r.status_code == 201, r.text
    return r.json()


def _total(c: httpx.Client, **params: Any) -> int:
    r = c.get(f"{ACME}/artifacts", params=params)
    assert r.status_code == 200, r.text
    return r.json()["total"]


def _assert_detail(r: httpx.Response, loc: list[Any], type_: str | None = None) -> dict[str, Any]:
    """A 422 in FastAPI/pydantic's shape, with an entry at `loc`; that entry."""
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list) and detail
    for entry in detail:
        assert {"loc", "msg", "type", "input"} <= set(entry), entry
        assert isinstance(entry["msg"], str) and entry["msg"]
    hits = [e for e in detail if e["loc"] == loc]
    assert hits, f"no error at {loc}: {detail}"
    if type_ is not None:
        assert hits[0]["type"] == type_, hits[0]
    return hits[0]


# --- documentation ---------------------------------------------------------------------------------------


def test_openapi_is_public_and_complete(server: Server) -> None:
    r = httpx.get(f"{server.base}/openapi.json", timeout=TIMEOUT)  # public documentation: no token
    assert r.status_code == 200
    doc = r.json()
    prefix = "/v1/orgs/{org_id}/workspaces/{workspace_id}/namespaces/{namespace_id}"
    ops = {(m.upper(), p.removeprefix(prefix)): op for p, item in doc["paths"].items() for m, op in item.items()
           if p.startswith(prefix)}
    assert set(ops) >= {
        ("GET", "/artifacts"), ("POST", "/artifacts"), ("POST", "/artifacts/upload"),
        ("GET", "/artifacts/{artifact_id}"), ("PUT", "/artifacts/{artifact_id}"), ("PATCH", "/artifacts/{artifact_id}"),
        ("DELETE", "/artifacts/{artifact_id}"), ("GET", "/artifacts/{artifact_id}/versions"),
        ("GET", "/artifacts/{artifact_id}/download-url"), ("GET", "/artifacts/{artifact_id}/download"),
        ("GET", "/threads/{thread_id}/artifacts"), ("POST", "/artifacts/query"),
        ("POST", "/artifacts/{artifact_id}/promote"), ("GET", "/artifacts/{artifact_id}/jobs"),
    }
    schemes = doc["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= schemes["HTTPBearer"].items()
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key" and schemes["APIKeyHeader"]["in"] == "header"
    for op in ops.values():
        assert {"HTTPBearer": []} in op["security"] and {"401", "403", "422"} <= set(op["responses"])
    # Real models, with the storage models' field names and limits.
    schemas = doc["components"]["schemas"]
    assert {"total", "has_more", "next_cursor", "artifacts"} <= set(schemas["ArtifactPage"]["properties"])
    limit = next(p for p in ops[("GET", "/artifacts")]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"], limit["schema"]["default"]) == (1, 200, 50)
    upload = ops[("POST", "/artifacts/upload")]["requestBody"]["content"]
    assert list(upload) == ["multipart/form-data"]
    assert "org_id" not in schemas["CreateBody"]["properties"]  # the use case's body: the path gives the scope


# --- authentication and authorization ----------------------------------------------------------------------


@pytest.mark.parametrize("who", ["none", "bad", "revoked"])
def test_unauthenticated_is_401_with_www_authenticate(server: Server, who: str) -> None:
    headers = {"none": {}, "bad": bearer("amcp_nope_notavalidsecret"), "revoked": bearer(server.tokens["revoked"])}
    with httpx.Client(base_url=server.base, headers=headers[who], timeout=TIMEOUT) as c:
        for r in (c.get(f"{ACME}/artifacts"),
                  c.post(f"{ACME}/artifacts", json={"name": "x", "content": "y"}),
                  # Even a malformed request learns nothing before it authenticates.
                  c.post(f"{ACME}/artifacts", content=b"{not json", headers={"content-type": "application/json"}),
                  c.get(f"{ACME}/artifacts/not-an-id")):
            assert r.status_code == 401, r.text
            assert r.headers["www-authenticate"].startswith('Bearer realm="artifact-mcp"')
            assert r.json()["error"] == "unauthenticated"
    with server.client("alice") as c:
        assert _total(c, tags="never-written") == 0


def test_api_key_header_works(server: Server) -> None:
    with httpx.Client(base_url=server.base, headers={"X-API-Key": server.tokens["reader"]}, timeout=TIMEOUT) as c:
        r = c.get(f"{ACME}/artifacts")
        assert r.status_code == 200, r.text
        assert r.json()["has_more"] in (True, False)
    with httpx.Client(base_url=server.base, headers={"X-API-Key": "amcp_bad_key"}, timeout=TIMEOUT) as c:
        assert c.get(f"{ACME}/artifacts").status_code == 401


def test_forbidden_is_403_and_writes_nothing(server: Server, alice: httpx.Client) -> None:
    before = _total(alice)
    # Another org's scope.
    r = alice.get("/v1/orgs/globex/workspaces/ops/namespaces/main/artifacts")
    assert r.status_code == 403 and "globex/ops/main" in r.json()["detail"] and r.json()["error"] == "forbidden"
    r = alice.post("/v1/orgs/globex/workspaces/ops/namespaces/main/artifacts", json={"name": "x", "content": "y"})
    assert r.status_code == 403
    # A read-only token writing, and reading outside its one namespace.
    with server.client("reader") as reader:
        r = reader.post(f"{ACME}/artifacts", json={"name": "x", "content": "y"})
        assert r.status_code == 403 and "'write'" in r.json()["detail"]
        r = reader.post(f"{ACME}/artifacts/upload", files={"file": ("a.txt", b"hello")})
        assert r.status_code == 403
        assert reader.get("/v1/orgs/acme/workspaces/research/namespaces/other/artifacts").status_code == 403
    # Promote needs admin.
    art = _create(alice, name="to promote")
    r = alice.post(f"{ACME}/artifacts/{art['artifact_id']}/promote", json={})
    assert r.status_code == 403 and "'admin'" in r.json()["detail"]
    assert _total(alice) == before + 1
    assert alice.get(f"{ACME}/artifacts/{art['artifact_id']}").json()["promoted_to_source_id"] is None


# --- malformed input and unknown ids -----------------------------------------------------------------------


def test_validation_errors_have_the_detail_shape(alice: httpx.Client) -> None:
    before = _total(alice)
    entry = _assert_detail(alice.get(f"{ACME}/artifacts", params={"limit": 500}), ["query", "limit"],
                           "less_than_equal")
    assert entry["input"] == 500 and entry["ctx"] == {"le": 200}  # as the seeds echo it: the number
    _assert_detail(alice.get(f"{ACME}/artifacts", params={"limit": 0}), ["query", "limit"], "greater_than_equal")
    _assert_detail(alice.get(f"{ACME}/artifacts", params={"bogus": 1}), ["query", "bogus"], "extra_forbidden")
    entry = _assert_detail(alice.get(f"{ACME}/artifacts/art_123"), ["path", "artifact_id"], "string_pattern_mismatch")
    assert entry["input"] == "art_123"
    _assert_detail(alice.get("/v1/orgs/a%20b/workspaces/w/namespaces/n/artifacts"), ["path", "org_id"])
    r = alice.post(f"{ACME}/artifacts", json={"name": "x", "content": 5, "ttl_seconds": "soon", "tags": "a"})
    _assert_detail(r, ["body", "ttl_seconds"], "int_parsing")
    _assert_detail(r, ["body", "content"], "value_error")
    _assert_detail(r, ["body", "tags"], "list_type")
    _assert_detail(alice.post(f"{ACME}/artifacts", json={"content": "no name"}), ["body", "name"], "missing")
    _assert_detail(alice.post(f"{ACME}/artifacts", json={"name": "x", "content": "y", "org_id": "acme"}),
                   ["body", "org_id"], "extra_forbidden")
    r = alice.post(f"{ACME}/artifacts", content=b'{"name": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = alice.post(f"{ACME}/artifacts", content=b"\xff\xfe\x00", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body"]
    # Errors the store finds come back in the same shape.
    r = alice.get(f"{ACME}/artifacts", params={"cursor": "not-a-cursor"})
    assert r.status_code == 422 and "cursor" in r.json()["detail"][0]["msg"]
    _assert_detail(alice.get(f"{ACME}/artifacts/art_{'0' * 32}/download-url", params={"expires_in": 30}),
                   ["query", "expires_in"], "greater_than_equal")
    assert _total(alice) == before


def test_unknown_id_is_404(alice: httpx.Client) -> None:
    missing = f"art_{'0' * 32}"
    for r in (alice.get(f"{ACME}/artifacts/{missing}"), alice.get(f"{ACME}/artifacts/{missing}/versions"),
              alice.patch(f"{ACME}/artifacts/{missing}", json={"tags": ["x"]}),
              alice.delete(f"{ACME}/artifacts/{missing}"), alice.get(f"{ACME}/artifacts/{missing}/jobs"),
              alice.get(f"{ACME}/artifacts/{missing}/download-url")):
        assert r.status_code == 404, r.text
        assert r.json()["error"] == "not_found" and missing in r.json()["detail"]
    # An id from another namespace is unknown here.
    other = alice.post("/v1/orgs/acme/workspaces/research/namespaces/other/artifacts",
                       json={"name": "elsewhere", "content": "x"}).json()
    assert alice.get(f"{ACME}/artifacts/{other['artifact_id']}").status_code == 404


# --- every route's happy path ------------------------------------------------------------------------------


def test_create_get_list_and_thread(server: Server, alice: httpx.Client) -> None:
    doc = {"findings": ["tapirs swim"], "n": 3}
    a = _create(alice, name="report", content=doc, artifact_type="report", thread_id="t-1", tags=["zoo"],
                metadata={"k": 1}, created_by="mallory", summary="about tapirs")
    assert a["created_by"] == "alice"  # an authenticated caller is recorded as itself
    assert (a["org_id"], a["workspace_id"], a["namespace_id"]) == ("acme", "research", "main")
    assert a["status"] == "pending" and a["version"] == 1 and a["root_artifact_id"] == a["artifact_id"]
    b = _create(alice, name="transcript", content="hello there", artifact_type="transcript", thread_id="t-1")
    _create(alice, name="elsewhere", content="x", thread_id="t-2")

    got = alice.get(f"{ACME}/artifacts/{a['artifact_id']}").json()
    assert got["content"] == doc and got["metadata"] == {"k": 1} and got["summary"] == "about tapirs"
    assert alice.get(f"{ACME}/artifacts/{a['artifact_id']}", params={"max_chars": 0}).json()["content"] is None

    page = alice.get(f"{ACME}/artifacts", params={"artifact_types": "report,transcript", "limit": 1}).json()
    assert page["total"] >= 2 and page["has_more"] is True and len(page["artifacts"]) == 1
    second = alice.get(f"{ACME}/artifacts", params={"artifact_types": "report,transcript", "limit": 1,
                                                     "cursor": page["next_cursor"]}).json()
    assert second["artifacts"][0]["artifact_id"] != page["artifacts"][0]["artifact_id"]

    thread = alice.get(f"{ACME}/threads/t-1/artifacts").json()
    assert {x["artifact_id"] for x in thread["artifacts"]} == {a["artifact_id"], b["artifact_id"]}
    assert thread["total"] == 2 and thread["has_more"] is False and thread["next_cursor"] is None
    tagged = alice.get(f"{ACME}/artifacts", params=[("tags", "zoo")]).json()
    assert [x["artifact_id"] for x in tagged["artifacts"]] == [a["artifact_id"]]


def test_update_versions_delete(alice: httpx.Client) -> None:
    a = _create(alice, name="draft", content="v1 text")
    aid = a["artifact_id"]
    r = alice.patch(f"{ACME}/artifacts/{aid}", json={"tags": ["reviewed"], "updated_by": "mallory"})
    assert r.status_code == 200, r.text
    assert r.json()["new_version"] is False and r.json()["artifact"]["tags"] == ["reviewed"]
    r = alice.patch(f"{ACME}/artifacts/{aid}", json={"content": "v2 text", "expected_version": 1})
    assert r.status_code == 200 and r.json()["new_version"] is True
    v2 = r.json()["artifact"]
    assert v2["version"] == 2 and v2["root_artifact_id"] == aid
    r = alice.patch(f"{ACME}/artifacts/{aid}", json={"content": "lost update", "expected_version": 1})
    assert r.status_code == 409 and r.json()["error"] == "conflict"

    versions = alice.get(f"{ACME}/artifacts/{aid}/versions").json()
    assert versions["total"] == 2 and [v["version"] for v in versions["versions"]] == [1, 2]
    assert [v["is_latest"] for v in versions["versions"]] == [False, True]
    assert versions["versions"][0]["replaced_by_version"] == 2

    r = alice.delete(f"{ACME}/artifacts/{v2['artifact_id']}", params={"all_versions": "false"})
    assert r.status_code == 200 and r.json()["remaining_versions"] == 1
    assert alice.get(f"{ACME}/artifacts/{aid}").json()["is_latest"] is True
    r = alice.delete(f"{ACME}/artifacts/{aid}")
    assert r.status_code == 200 and r.json()["deleted_artifact_ids"] == [aid]
    assert alice.get(f"{ACME}/artifacts/{aid}").status_code == 404


def test_query_promote_jobs(server: Server) -> None:
    with httpx.Client(base_url=server.base, headers=bearer(server.tokens["boss"]),
                                 timeout=TIMEOUT) as c:
        r = c.post(f"{ACME}/artifacts", json={
            "name": "capybara notes", "content": "Capybaras are the largest living rodents and love water.",
            "wait_for_index": True})
        assert r.status_code == 201 and r.json()["is_indexed"] is True, r.text
        art = r.json()
        r = c.post(f"{ACME}/artifacts/query", json={"query": "largest rodent", "top_k": 3})
        assert r.status_code == 200, r.text
        result = r.json()
        assert result["total_results"] >= 1
        hit = result["results"][0]
        assert hit["artifact"]["artifact_id"] == art["artifact_id"]
        assert 0 < hit["score"] <= 1 and "rodents" in hit["matched_chunk"]
        assert art["artifact_id"] in result["combined_context"]
        _assert_detail(c.post(f"{ACME}/artifacts/query", json={"query": "x", "top_k": 0}),
                       ["body", "top_k"], "greater_than_equal")

        r = c.post(f"{ACME}/artifacts/{art['artifact_id']}/promote", json={"source_name": "Rodents"})
        assert r.status_code == 200, r.text
        promoted = r.json()
        assert promoted["source_name"] == "Rodents" and promoted["already_promoted"] is False
        again = c.post(f"{ACME}/artifacts/{art['artifact_id']}/promote").json()  # no body: defaults
        assert again["already_promoted"] is True and again["source_id"] == promoted["source_id"]
        # A promoted source is found from another namespace of the workspace.
        r = c.post("/v1/orgs/acme/workspaces/research/namespaces/elsewhere/artifacts/query",
                         json={"query": "largest rodent"})
        assert [h["artifact"]["artifact_id"] for h in r.json()["results"]] == [art["artifact_id"]]

        jobs = c.get(f"{ACME}/artifacts/{art['artifact_id']}/jobs").json()
        assert jobs["root_artifact_id"] == art["artifact_id"]
        assert jobs["jobs"] and jobs["jobs"][-1]["type"] == "index" and jobs["jobs"][-1]["status"] == "succeeded"


def test_upload_and_download_round_trip(server: Server, alice: httpx.Client) -> None:
    r = alice.post(f"{ACME}/artifacts/upload", files={"file": ("blob.bin", BINARY, "application/octet-stream")},
                   data={"tags": "raw,bytes", "metadata": json.dumps({"source": "sensor"}), "thread_id": "t-up",
                         "description": "raw bytes", "created_by": "mallory", "keywords": "a, b"})
    assert r.status_code == 201, r.text
    art = r.json()
    assert art["name"] == "blob.bin" and art["file_name"] == "blob.bin" and art["has_file"] is True
    assert art["size_bytes"] == len(BINARY) and art["tags"] == ["raw", "bytes"] and art["keywords"] == ["a", "b"]
    assert art["metadata"] == {"source": "sensor"} and art["created_by"] == "alice"
    assert art["artifact_type"] == "file" and art["thread_id"] == "t-up"

    # The seed's download answer is JSON naming a signed link (default one hour); the link yields the exact bytes.
    r = alice.get(f"{ACME}/artifacts/{art['artifact_id']}/download")
    assert r.status_code == 200, r.text
    got = r.json()
    assert set(got) >= {"artifact_id", "download_url", "expires_in", "file_name", "content_type", "file_size_bytes"}
    assert got["artifact_id"] == art["artifact_id"] and got["expires_in"] == 3600 and got["file_name"] == "blob.bin"
    assert got["file_size_bytes"] == len(BINARY) and "/download/" in got["download_url"]
    r = httpx.get(got["download_url"], timeout=TIMEOUT)  # the link alone is the credential
    assert r.status_code == 200 and r.content == BINARY
    assert "blob.bin" in r.headers["content-disposition"]
    assert alice.get(f"{ACME}/artifacts/{art['artifact_id']}/download",
                     params={"expires_in": 600}).json()["expires_in"] == 600
    for bad in (59, 86401, "soon"):
        _assert_detail(alice.get(f"{ACME}/artifacts/{art['artifact_id']}/download", params={"expires_in": bad}),
                       ["query", "expires_in"])

    link = alice.get(f"{ACME}/artifacts/{art['artifact_id']}/download-url", params={"expires_in": 120}).json()
    assert link["expires_in"] == 120 and link["file_size_bytes"] == len(BINARY)
    assert link["download_url"].startswith(server.base + "/download/")
    assert httpx.get(link["download_url"], timeout=TIMEOUT).content == BINARY

    # A text file, named by its form field; detected as text and readable through get.
    r = alice.post(f"{ACME}/artifacts/upload", files={"file": ("notes.md", "# Title\n\nbody ü".encode())},
                   data={"name": "My notes"})
    assert r.status_code == 201, r.text
    md = r.json()
    assert md["name"] == "My notes" and md["mime_type"].startswith("text/")
    assert alice.get(f"{ACME}/artifacts/{md['artifact_id']}").json()["content_text"] == "# Title\n\nbody ü"
    follow = httpx.get(alice.get(f"{ACME}/artifacts/{md['artifact_id']}/download").json()["download_url"],
                       timeout=TIMEOUT)
    assert follow.status_code == 200 and follow.content == "# Title\n\nbody ü".encode()


def test_upload_validation(alice: httpx.Client) -> None:
    before = _total(alice)
    _assert_detail(alice.post(f"{ACME}/artifacts/upload", files={"file": ("a.txt", b"x")},
                              data={"metadata": "{not json"}), ["body", "metadata"], "json_invalid")
    _assert_detail(alice.post(f"{ACME}/artifacts/upload", files={"other": ("a.txt", b"x")}), ["body", "file"],
                   "missing")
    _assert_detail(alice.post(f"{ACME}/artifacts/upload", files={"file": ("a.txt", b"x")},
                              data={"ttl_seconds": "-5"}), ["body", "ttl_seconds"], "greater_than_equal")
    _assert_detail(alice.post(f"{ACME}/artifacts/upload", files={"file": ("a.txt", b"x")},
                              data={"metadata": json.dumps({"k": "v" * 70_000})}), ["body", "metadata"])
    assert _total(alice) == before


# --- request size limits -----------------------------------------------------------------------------------


def test_size_limits_are_413_and_store_nothing(alice: httpx.Client) -> None:
    before = _total(alice)
    # A file over MAX_UPLOAD_BYTES (but within the multipart allowance): refused while streaming to the blob store.
    r = alice.post(f"{ACME}/artifacts/upload", files={"file": ("big.bin", b"\x01" * (MAX_UPLOAD + 1))})
    assert r.status_code == 413, r.text
    assert str(MAX_UPLOAD) in r.json()["detail"] and r.json()["error"] == "too_large"
    # JSON content over the limit: the store's own check.
    r = alice.post(f"{ACME}/artifacts", json={"name": "big", "content": "x" * (MAX_UPLOAD + 1)})
    assert r.status_code == 413 and "ARTIFACT_MCP_MAX_UPLOAD_BYTES" in r.json()["detail"]
    # A body over the route's limit, announced by Content-Length: refused before it is read.
    huge = b'{"name": "x", "content": "' + b"y" * (2 * 1024 * 1024) + b'"}'
    r = alice.post(f"{ACME}/artifacts", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    # The same without a Content-Length (chunked): counted as it streams in.
    r = alice.post(f"{ACME}/artifacts", content=iter([huge[i:i + 65536] for i in range(0, len(huge), 65536)]),
                   headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert _total(alice) == before


def test_new_content_keeps_the_mime_type_of_its_kind(alice: httpx.Client) -> None:
    """A Markdown report edited with new text stays text/markdown unless the edit names a type; content of
    another kind (JSON after text) takes its own."""
    aid = _create(alice, name="report", content="# v1", mime_type="text/markdown")["artifact_id"]
    r = alice.patch(f"{ACME}/artifacts/{aid}", json={"content": "# v2, edited"})
    assert r.status_code == 200 and r.json()["artifact"]["mime_type"] == "text/markdown", r.text
    r = alice.patch(f"{ACME}/artifacts/{aid}", json={"content": "plain now", "mime_type": "text/plain"})
    assert r.json()["artifact"]["mime_type"] == "text/plain"
    r = alice.patch(f"{ACME}/artifacts/{aid}", json={"content": {"rows": [1, 2]}})
    assert r.json()["artifact"]["mime_type"] == "application/json"
    versions = alice.get(f"{ACME}/artifacts/{aid}/versions").json()["versions"]
    assert [v["mime_type"] for v in versions] == ["text/markdown", "text/markdown", "text/plain", "application/json"]
