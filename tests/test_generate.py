"""generate_artifact end to end: every type and format through real MCP sessions (with a client that answers
sampling requests and one that cannot), idempotency, failures, tenant isolation, restarts, stdio and HTTP."""

from __future__ import annotations

import base64
import io
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fsspec.core import url_to_fs
from mcp import Client
from mcp.client.stdio import stdio_client
from mcp.server import MCPServer
from mcp.types import BlobResourceContents, CreateMessageRequestParams, CreateMessageResult, TextContent
from pypdf import PdfReader

from artifact_mcp.server.app import build_app
from artifact_mcp.server.runtime import Runtime
from artifact_mcp.server.settings import Settings
from tests.conftest import call, call_error
from tests.support_http import bearer, create_token, mcp_http, serve_http
from tests.test_stdio import TIMEOUT, open_client, stdio_params

pytestmark = pytest.mark.anyio

TYPES = ("summary", "report", "transcript", "digest")
FORMATS = ("markdown", "html", "json", "pdf")
MIME = {"markdown": "text/markdown", "html": "text/html", "json": "application/json", "pdf": "application/pdf"}
NOTES = [
    "The database migration failed on Monday because the orders index was missing. Rollback took ten minutes.",
    "We decided to add retries with exponential backoff to the migration runner. Alice owns the change.",
    "Load tests after the fix show p95 latency of 40 ms. The release is planned for Thursday afternoon.",
]
ID = re.compile(r"art_[0-9a-f]{32}")


class Sampler:
    """A client-side model: answers sampling requests with Markdown that cites the first material id."""

    def __init__(self) -> None:
        self.requests: list[CreateMessageRequestParams] = []

    async def __call__(self, _context: Any, params: CreateMessageRequestParams) -> CreateMessageResult:
        self.requests.append(params)
        prompt = params.messages[0].content.text  # type: ignore[union-attr]
        first = ID.search(prompt)
        assert first is not None, prompt
        text = (f"# Ignored title\n\n## Findings\n\nThe migration failed and retries were added [{first.group()}].\n\n"
                "## Outlook\n\nThe model-written outlook: release on Thursday.\n")
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text=text), model="test-model")


@pytest.fixture
async def sampling_client(app_runtime: tuple[MCPServer, Runtime], era: str) -> AsyncIterator[tuple[Client, Sampler]]:
    sampler = Sampler()
    async with Client(app_runtime[0], mode=era, sampling_callback=sampler) as c:
        yield c, sampler


async def thread_of_notes(client: Client, thread: str = "t1", **scope: str) -> list[str]:
    ids = []
    for i, text in enumerate(NOTES):
        art = await call(client, "create_artifact", {"name": f"note {i}", "content": text, "thread_id": thread,
                                                     "source": "agent", "source_tool": "notes", **scope})
        ids.append(art["artifact_id"])
    return ids


async def generate(client: Client, **args: Any) -> dict[str, Any]:
    with anyio.fail_after(60):
        return await call(client, "generate_artifact", args)


async def read_bytes(client: Client, artifact_id: str) -> bytes:
    result = await client.read_resource(f"artifact://{artifact_id}/content")
    contents = result.contents[0]
    if isinstance(contents, BlobResourceContents):
        return base64.b64decode(contents.blob)
    return contents.text.encode()


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def blob_files(settings: Settings) -> set[str]:
    fs, root = url_to_fs(settings.blob_url)
    base = f"{root.rstrip('/')}/sha256"
    return set(fs.find(base)) if fs.exists(base) else set()


def check_document(fmt: str, data: bytes, title: str, material: list[str]) -> str:
    """The format is what it claims, names the title and cites the material; returns its text."""
    if fmt == "pdf":
        assert data.startswith(b"%PDF-")
        text = pdf_text(data)
        assert "Page 1 of" in text
    else:
        text = data.decode()
    if fmt == "html":
        assert text.startswith("<!DOCTYPE html>") and f"<title>{title}</title>" in text and "<h2>" in text
    if fmt == "json":
        doc = json.loads(text)
        assert doc["title"] == title and doc["sections"]
        assert [c["artifact_id"] for c in doc["citations"]] == material
        for section in doc["sections"]:
            assert set(section["citations"]) <= set(material) and section["citations"], section
    if fmt == "markdown":
        assert text.startswith(f"# {title}\n") and "\n## Sources\n" in text
    assert title in text
    for aid in material:
        assert aid in text, (fmt, aid)
    return " ".join(text.split())  # PDF lines wrap anywhere


# --- every type and format --------------------------------------------------------------------------


async def test_every_type_and_format_without_sampling(client: Client) -> None:
    material = await thread_of_notes(client)
    for doc_type in TYPES:
        for fmt in FORMATS:
            r = await generate(client, document_type=doc_type, format=fmt, artifact_ids=material, wait=True,
                               options={"branding": "dark" if fmt == "pdf" else "light"})
            art, job = r["artifact"], r["job"]
            assert art["status"] == "completed", art["generation_error"]
            assert (art["document_type"], art["format"], art["mime_type"]) == (doc_type, fmt, MIME[fmt])
            assert art["artifact_type"] == doc_type and art["has_file"] and art["size_bytes"] > 0
            assert r["writer"] == ("verbatim" if doc_type == "transcript" else "extractive")
            assert job["type"] == f"generate_{doc_type}" and job["status"] == "succeeded"
            assert job["started_at"] and job["ended_at"] and job["ended_at"] >= job["started_at"]
            assert art["metadata"]["sources"] == material
            assert art["source_tool"] == "generate_artifact" and art["source_execution_id"] == job["job_id"]
            text = check_document(fmt, await read_bytes(client, art["artifact_id"]), art["name"], material)
            if doc_type == "transcript":  # verbatim, in order, with names, times and provenance
                positions = [text.index(n.split(".")[0]) for n in NOTES]
                assert positions == sorted(positions)
                assert "note 0" in text and "via agent / notes" in text and "UTC" in text
            else:  # extractive: the material's own sentences
                assert any(n.split(".")[0] in text for n in NOTES)


async def test_sampling_client_writes_summary_report_digest(sampling_client: tuple[Client, Sampler]) -> None:
    client, sampler = sampling_client
    material = await thread_of_notes(client)
    for doc_type in ("summary", "report", "digest"):
        for fmt in ("markdown", "pdf"):
            r = await generate(client, document_type=doc_type, format=fmt, thread_id="t1", wait=True,
                               options={"title": f"{doc_type} by the model", "max_words": 100})
            art = r["artifact"]
            assert art["status"] == "completed" and r["writer"] == "client_model"
            assert art["metadata"]["generation"]["model"] == "test-model"
            text = check_document(fmt, await read_bytes(client, art["artifact_id"]), f"{doc_type} by the model",
                                  material)
            assert "model-written outlook" in text and "Ignored title" not in text
    assert len(sampler.requests) == 6
    prompt_text = sampler.requests[0].messages[0].content.text  # type: ignore[union-attr]
    assert all(n in prompt_text for n in NOTES) and all(aid in prompt_text for aid in material)
    assert "cite" in (sampler.requests[0].system_prompt or "")
    # Sections cite what they name; a section naming no id is attributed to the whole material.
    r = await generate(client, document_type="report", format="json", thread_id="t1", wait=True)
    doc = json.loads(await read_bytes(client, r["artifact"]["artifact_id"]))
    cited = {s["heading"]: s["citations"] for s in doc["sections"]}
    assert cited["Findings"] == [material[0]] and cited["Outlook"] == material
    # A transcript is verbatim: no model is asked.
    before = len(sampler.requests)
    r = await generate(client, document_type="transcript", format="markdown", thread_id="t1", wait=True)
    assert r["writer"] == "verbatim" and len(sampler.requests) == before


# --- lifecycle -------------------------------------------------------------------------------------


async def test_returns_at_once_then_completes_and_is_an_ordinary_artifact(client: Client) -> None:
    await thread_of_notes(client, "t2")
    r = await generate(client, document_type="summary", format="markdown", thread_id="t2",
                       options={"title": "Migration summary"})
    art = r["artifact"]
    assert art["status"] == "processing" and not art["has_file"] and r["reused"] is False
    assert (art["document_type"], art["format"], art["thread_id"]) == ("summary", "markdown", "t2")
    assert art["created_at"] and r["job"]["status"] in ("queued", "running", "succeeded")
    aid = art["artifact_id"]
    with anyio.fail_after(30):
        while (art := await call(client, "get_artifact", {"artifact_id": aid}))["status"] == "processing":
            await anyio.sleep(0.05)
        assert art["status"] == "completed" and art["name"] == "Migration summary"
        # Indexed like any artifact, and indexing leaves 'completed' alone.
        while not (art := await call(client, "get_artifact", {"artifact_id": aid}))["is_indexed"]:
            await anyio.sleep(0.05)
    assert art["status"] == "completed" and art["content_text"].startswith("# Migration summary")
    jobs = await call(client, "list_artifact_jobs", {"artifact_id": aid})
    types = {j["type"]: j for j in jobs["jobs"]}
    assert types["generate_summary"]["status"] == "succeeded" and types["generate_summary"]["ended_at"]
    assert types["index"]["status"] == "succeeded"
    hits = await call(client, "query_artifacts", {"query": "Migration summary", "artifact_types": ["summary"]})
    assert [h["artifact"]["artifact_id"] for h in hits["results"]] == [aid]
    listed = await call(client, "list_artifacts", {"status": "completed"})
    assert [a["artifact_id"] for a in listed["artifacts"]] == [aid]
    promoted = await call(client, "promote_artifact", {"artifact_id": aid})
    assert promoted["source_id"]
    updated = await call(client, "update_artifact", {"artifact_id": aid, "content": "edited by hand"})
    assert updated["new_version"] and updated["artifact"]["version"] == 2


async def test_new_content_waits_for_the_generation_to_end(client: Client) -> None:
    for i in range(25):  # a ~40-page PDF: the job is busy for a while
        await call(client, "create_artifact", {"name": f"log {i}", "content": NOTES[i % 3] * 40, "thread_id": "long"})
    r = await generate(client, document_type="transcript", format="pdf", thread_id="long")
    aid = r["artifact"]["artifact_id"]
    result = await client.call_tool("update_artifact", {"artifact_id": aid, "content": "too early"})
    if result.is_error:  # the usual case: refused, nothing changed, the job carries on
        assert "still being generated" in result.content[0].text
        with anyio.fail_after(60):
            while (art := await call(client, "get_artifact", {"artifact_id": aid}))["status"] == "processing":
                await anyio.sleep(0.05)
        assert art["status"] == "completed" and art["version"] == 1 and art["is_latest"]
    else:  # the job had already finished: an ordinary new version
        versions = await call(client, "list_artifact_versions", {"artifact_id": aid})
        assert versions["versions"][0]["status"] == "completed"


async def test_wait_reports_progress(client: Client) -> None:
    await thread_of_notes(client)
    seen: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    with anyio.fail_after(60):
        result = await client.call_tool("generate_artifact", {"document_type": "digest", "format": "pdf",
                                                              "thread_id": "t1", "wait": True},
                                        progress_callback=on_progress)
    assert not result.is_error and result.structured_content["artifact"]["status"] == "completed"
    assert seen and seen[-1] == "document completed"


# --- idempotency -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sampling", [False, True], ids=["extractive", "sampling"])
async def test_twenty_concurrent_identical_calls_make_one_artifact(app_runtime: tuple[MCPServer, Runtime],
                                                                   era: str, sampling: bool) -> None:
    sampler = Sampler() if sampling else None
    async with Client(app_runtime[0], mode=era, sampling_callback=sampler) as client:
        material = await thread_of_notes(client)
        args = {"document_type": "report", "format": "html", "artifact_ids": material, "idempotency_key": "k-20"}
        results: list[dict[str, Any]] = []

        async def one() -> None:
            results.append(await generate(client, **args))

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
        assert len({r["artifact"]["artifact_id"] for r in results}) == 1
        assert sum(not r["reused"] for r in results) == 1
        assert len({r["job"]["job_id"] for r in results}) == 1
        listed = await call(client, "list_artifacts", {"artifact_types": ["report"]})
        assert listed["total"] == 1
        # The same key with a different request is refused, and creates nothing.
        error = await call_error(client, "generate_artifact", {**args, "format": "pdf"})
        assert "idempotency_key 'k-20' was already used for a different request" in error
        assert (await call(client, "list_artifacts", {"artifact_types": ["report"]}))["total"] == 1


async def test_idempotency_survives_a_restart(settings: Settings) -> None:
    app, _ = build_app(settings)
    async with Client(app) as client:
        material = await thread_of_notes(client)
        first = await generate(client, document_type="summary", format="json", artifact_ids=material,
                               idempotency_key="restart-key", wait=True)
    app, _ = build_app(settings)
    async with Client(app, mode="legacy") as client:
        again = await generate(client, document_type="summary", format="json", artifact_ids=material,
                               idempotency_key="restart-key")
        assert again["reused"] and again["artifact"]["artifact_id"] == first["artifact"]["artifact_id"]
        assert again["artifact"]["status"] == "completed"
        listed = await call(client, "list_artifacts", {"artifact_types": ["summary"]})
        assert listed["total"] == 1


async def test_keys_lapse_after_a_day_and_follow_deletion(app_runtime: tuple[MCPServer, Runtime]) -> None:
    app, runtime = app_runtime
    async with Client(app) as client:
        material = await thread_of_notes(client)
        first = await generate(client, document_type="summary", artifact_ids=material, idempotency_key="day")
        store = runtime.store.store
        assert store is not None
        with store._lock:  # age the key by a day in the catalog itself (no clock to fake)
            (expires,) = store.con.execute("SELECT expires_at - created_at FROM idempotency_keys").fetchone()
            assert expires.total_seconds() == 24 * 3600
            store.con.execute("UPDATE idempotency_keys SET created_at = created_at - INTERVAL '1 day', "
                              "expires_at = expires_at - INTERVAL '1 day'")
        # A lapsed key binds nothing: a different request under it is accepted as new.
        second = await generate(client, document_type="digest", artifact_ids=material, idempotency_key="day")
        assert not second["reused"] and second["artifact"]["artifact_id"] != first["artifact"]["artifact_id"]
        # Deleting the artifact a key made frees the key too.
        await call(client, "delete_artifact", {"artifact_id": second["artifact"]["artifact_id"]})
        third = await generate(client, document_type="digest", artifact_ids=material, idempotency_key="day")
        assert not third["reused"] and third["artifact"]["artifact_id"] != second["artifact"]["artifact_id"]


async def test_a_job_cut_short_by_a_restart_finishes_after_it(settings: Settings) -> None:
    app, _ = build_app(settings)
    async with Client(app) as client:
        material = await thread_of_notes(client)
        r = await generate(client, document_type="report", format="pdf", artifact_ids=material)
    # The server stopped right after accepting: whatever state the job was left in, the next owner finishes it.
    app, _ = build_app(settings)
    async with Client(app) as client:
        aid = r["artifact"]["artifact_id"]
        with anyio.fail_after(30):
            while (art := await call(client, "get_artifact", {"artifact_id": aid}))["status"] == "processing":
                await anyio.sleep(0.05)
        assert art["status"] == "completed"
        assert "Page 1 of" in pdf_text(await read_bytes(client, aid))


# --- failures and bad input ------------------------------------------------------------------------


@pytest.fixture
def small_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", blob_url=f"memory://blobs-{uuid.uuid4().hex}",
                    max_upload_bytes=64 * 1024, memory_limit="512MB", embedding_model="hash:384", _env_file=None)


async def test_failing_generation_leaves_a_failed_artifact_and_no_blob(small_settings: Settings) -> None:
    app, _ = build_app(small_settings)
    async with Client(app) as client:
        for i in range(2):  # each fits the 64 KiB limit; their transcript does not
            await call(client, "create_artifact", {"name": f"log {i}", "content": f"line {i} of the log. " * 2000,
                                                   "thread_id": "big"})
        blobs_before = blob_files(small_settings)
        r = await generate(client, document_type="transcript", format="markdown", thread_id="big", wait=True)
        art = r["artifact"]
        assert art["status"] == "failed" and not art["has_file"] and art["size_bytes"] == 0
        assert "over the 65536-byte limit" in art["generation_error"]
        assert r["job"]["status"] == "failed" and r["job"]["error"] == art["generation_error"]
        fetched = await call(client, "get_artifact", {"artifact_id": art["artifact_id"]})
        assert fetched["status"] == "failed" and fetched["generation_error"] == art["generation_error"]
        assert blob_files(small_settings) == blobs_before
        jobs = await call(client, "list_artifact_jobs", {"artifact_id": art["artifact_id"]})
        assert [(j["type"], j["status"]) for j in jobs["jobs"]] == [("generate_transcript", "failed")]


async def test_bad_input_is_refused_and_changes_nothing(client: Client) -> None:
    material = await thread_of_notes(client)
    cases = [
        ({"document_type": "summary"}, "give the material"),
        ({"document_type": "memo", "thread_id": "t1"}, "document_type"),
        ({"document_type": "summary", "format": "docx", "thread_id": "t1"}, "format"),
        ({"document_type": "summary", "thread_id": "no-such-thread"}, "no material to generate from"),
        ({"document_type": "summary", "artifact_ids": ["art_" + "0" * 32]}, "no artifact"),
        ({"document_type": "summary", "artifact_ids": ["nope"]}, "artifact_ids"),
        ({"document_type": "summary", "thread_id": "t1", "options": {"branding": "neon"}}, "branding"),
        ({"document_type": "summary", "thread_id": "t1", "options": {"max_words": 1}}, "max_words"),
        ({"document_type": "summary", "thread_id": "t1", "idempotency_key": "has space"}, "idempotency_key"),
    ]
    for args, expected in cases:
        error = await call_error(client, "generate_artifact", args)
        assert expected in error, (args, error)
    listed = await call(client, "list_artifacts", {"limit": 200})
    assert {a["artifact_id"] for a in listed["artifacts"]} == set(material)


async def test_material_from_another_tenant_is_never_used(client: Client) -> None:
    mine = await thread_of_notes(client, "shared-thread")
    other = {"org_id": "other-org", "workspace_id": "w", "namespace_id": "n"}
    secret = await call(client, "create_artifact", {"name": "secret", "thread_id": "shared-thread", **other,
                                                    "content": "The database migration secret is zebra-42.",
                                                    "wait_for_index": True})
    # Same thread id, a query that matches the other tenant's text best: only this tenant's artifacts are used.
    r = await generate(client, document_type="transcript", format="markdown", thread_id="shared-thread",
                       query="database migration secret zebra", wait=True)
    sources = r["artifact"]["metadata"]["sources"]
    assert secret["artifact_id"] not in sources and set(sources) <= set(mine)
    assert "zebra-42" not in (await read_bytes(client, r["artifact"]["artifact_id"])).decode()
    # Naming the other tenant's artifact is an error (as if it did not exist), and creates nothing.
    error = await call_error(client, "generate_artifact", {"document_type": "summary",
                                                           "artifact_ids": [secret["artifact_id"]]})
    assert "no artifact" in error
    listed = await call(client, "list_artifacts", {"artifact_types": ["summary"]})
    assert listed["total"] == 0


# --- transports ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_subprocess_with_sampling(tmp_path: Path, mode: str) -> None:
    sampler = Sampler()
    params = stdio_params(tmp_path / "data", tmp_path)
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with open_client(stdio_client(params, errlog=errlog), mode, sampling_callback=sampler) as client:
            with anyio.fail_after(TIMEOUT):
                material = await thread_of_notes(client)
                r = await generate(client, document_type="report", format="pdf", thread_id="t1", wait=True,
                                   idempotency_key="stdio")
                assert r["artifact"]["status"] == "completed" and r["writer"] == "client_model"
                text = check_document("pdf", await read_bytes(client, r["artifact"]["artifact_id"]),
                                      r["artifact"]["name"], material)
                assert "model-written outlook" in text
                again = await generate(client, document_type="report", format="pdf", thread_id="t1",
                                       idempotency_key="stdio")
                assert again["reused"] and again["artifact"]["artifact_id"] == r["artifact"]["artifact_id"]
    assert len(sampler.requests) == 1


def test_http_keys_and_material_belong_to_the_caller(tmp_path: Path) -> None:
    data = tmp_path / "data"
    alice = create_token(data, "alice", ["a/*/*"], ["write"], "a/w/n")
    bob = create_token(data, "bob", ["b/*/*"], ["write"], "b/w/n")

    async def run(port: int) -> None:
        async with mcp_http(port, bearer(bob)) as client:
            bobs = await thread_of_notes(client)
            b = await generate(client, document_type="summary", thread_id="t1", idempotency_key="same-key",
                               wait=True)
        async with mcp_http(port, bearer(alice), mode="legacy") as client:
            alices = await thread_of_notes(client)
            a = await generate(client, document_type="summary", thread_id="t1", idempotency_key="same-key",
                               wait=True)
            # Keys are per principal: alice's key is not bob's.
            assert not a["reused"] and a["artifact"]["artifact_id"] != b["artifact"]["artifact_id"]
            assert a["artifact"]["metadata"]["sources"] == alices
            assert a["artifact"]["created_by"] == "alice"
            error = await call_error(client, "generate_artifact", {"document_type": "summary",
                                                                   "artifact_ids": bobs[:1]})
            assert "no artifact" in error
            error = await call_error(client, "generate_artifact", {"document_type": "summary", "thread_id": "t1",
                                                                   "org_id": "b"})
            assert "forbidden" in error
        # The REST mirror: POST …/artifacts/generate with an Idempotency-Key header.
        url = f"http://127.0.0.1:{port}/v1/orgs/a/workspaces/w/namespaces/n/artifacts/generate"
        body = {"document_type": "digest", "format": "pdf", "thread_id": "t1"}
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            first = await http.post(url, json=body, headers={**bearer(alice), "Idempotency-Key": "rest-1"})
            assert first.status_code == 202, first.text
            assert first.json()["artifact"]["status"] == "processing" and first.json()["writer"] == "extractive"
            again = await http.post(url, json={**body, "wait": True},
                                    headers={**bearer(alice), "Idempotency-Key": "rest-1"})
            assert again.status_code == 202 and again.json()["reused"]
            assert again.json()["artifact"]["artifact_id"] == first.json()["artifact"]["artifact_id"]
            other = await http.post(url, json={**body, "format": "html"},
                                    headers={**bearer(alice), "Idempotency-Key": "rest-1"})
            assert other.status_code == 409 and "different request" in other.json()["detail"]
            missing = await http.post(url, json={"document_type": "digest"}, headers=bearer(alice))
            assert missing.status_code == 422 and "give the material" in missing.text
            assert (await http.post(url, json=body)).status_code == 401
            assert (await http.post(url, json=body, headers=bearer(bob))).status_code == 403

    with serve_http(data) as port:
        anyio.run(run, port)
