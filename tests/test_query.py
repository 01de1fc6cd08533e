"""Recall through MCP: indexing jobs, query_artifacts, promote_artifact, list_artifact_jobs.

These use the built-in hashing embedding (deterministic, lexical); test_recall_e2e.py runs the real
default model. Every search goes through the tool, against a real DuckDB file."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from artifact_mcp.server.app import build_app
from artifact_mcp.server.settings import Settings
from artifact_mcp.storage.index.search import count_tokens
from tests.conftest import call, call_error, indexed

pytestmark = pytest.mark.anyio


async def create(client: Client, name: str, content: Any, **extra: Any) -> dict[str, Any]:
    return await call(client, "create_artifact", {"name": name, "content": content, "wait_for_index": True, **extra})


async def search(client: Client, query: str, **extra: Any) -> dict[str, Any]:
    return await call(client, "query_artifacts", {"query": query, **extra})


def names(result: dict[str, Any]) -> list[str]:
    return [h["artifact"]["name"] for h in result["results"]]


async def test_searchable_after_wait_for_index(client: Client) -> None:
    art = await create(client, "Deployment runbook", "Roll back the payments service with helm rollback payments.")
    assert art["is_indexed"] and art["status"] == "ready" and art["chunk_count"] >= 1
    assert art["embedding_model_id"] == "hash-384" and art["index_collection"] == "artifacts"
    assert art["indexed_at"] is not None and art["index_attempts"] == 1 and art["index_error"] is None
    await create(client, "Lunch menu", "Soup of the day: tomato. Dessert: apple pie.")
    result = await search(client, "how do I roll back payments")
    assert names(result)[0] == "Deployment runbook"
    hit = result["results"][0]
    assert "helm rollback" in hit["matched_chunk"] and 0 < hit["score"] <= 1
    assert result["total_results"] >= 1 and result["query"] == "how do I roll back payments"
    for mode in ("keyword", "semantic", "hybrid"):
        assert names(await search(client, "helm rollback", mode=mode))[0] == "Deployment runbook", mode


async def test_create_returns_pending_then_indexes(client: Client) -> None:
    art = await call(client, "create_artifact", {"name": "later", "content": "background indexing works"})
    assert art["status"] in ("pending", "processing", "ready")
    with anyio.fail_after(20):
        got = await indexed(client, art["artifact_id"])
    assert got["status"] == "ready"
    jobs = await call(client, "list_artifact_jobs", {"artifact_id": art["artifact_id"]})
    assert [(j["type"], j["status"], j["attempts"]) for j in jobs["jobs"]] == [("index", "succeeded", 1)]
    job = jobs["jobs"][0]
    assert job["started_at"] and job["ended_at"] and job["created_at"] <= job["started_at"] <= job["ended_at"]


async def test_identifiers_found_by_keyword(client: Client) -> None:
    code = "def parse_request(raw):\n    return HTTPServer(raw)\n"
    await create(client, "server.py", code, mime_type="text/x-python")
    await create(client, "notes", "We should parse the request body later.")
    result = await search(client, "parse_request", mode="keyword")
    assert names(result)[0] == "server.py"
    assert names(await search(client, "HTTPServer", mode="keyword")) == ["server.py"]


EVIDENCE_DOCS = {
    "Deployment runbook": "Roll back the payments service with helm rollback payments.",
    "Lunch menu": "Soup of the day: tomato. Dessert: apple pie.",
    "Vault note": "The staging vault passphrase is quixotic-marmalade-7731; rotate it monthly.",
    "Team offsite": "We meet in Lisbon in the third week of May for planning.",
    "Release checklist": "Tag the build, run the smoke tests, then publish the changelog.",
    "Incident review": "The outage began when the cache cluster ran out of memory.",
}


async def test_a_result_needs_evidence(client: Client) -> None:
    """A codeword in one artifact among six is one result, counted once, in every mode: the other five share
    nothing with the query and are no results (hybrid used to fill top_k with them at score 0, count them in
    total_results and paste their chunks into the context)."""
    for name, text in EVIDENCE_DOCS.items():
        await create(client, name, text)
    for mode in ("hybrid", "semantic", "keyword"):
        result = await search(client, "quixotic-marmalade-7731", mode=mode, top_k=10)
        assert names(result) == ["Vault note"], (mode, names(result))
        assert result["total_results"] == 1, mode
        context = result["combined_context"]
        assert "quixotic-marmalade-7731" in context and "[2]" not in context and "Lunch menu" not in context, mode


async def test_a_query_matching_nothing_returns_nothing(client: Client) -> None:
    for name, text in EVIDENCE_DOCS.items():
        await create(client, name, text)
    for mode in ("hybrid", "semantic", "keyword"):
        result = await search(client, "zyzzyva xenoglossia", mode=mode, top_k=10)
        assert result["results"] == [], (mode, names(result))
        assert result["combined_context"] == "" and result["total_results"] == 0, mode
        assert result["context_tokens"] == 0, mode


async def test_delete_replace_expire_leave_results_at_once(client: Client) -> None:
    gone = await create(client, "doomed zebra", "zebra crossing notes")
    old = await create(client, "versioned doc", "giraffe necks are long")
    short = await create(client, "ephemeral okapi", "okapi live in forests", ttl_seconds=3)
    assert names(await search(client, "zebra", mode="keyword")) == ["doomed zebra"]
    assert names(await search(client, "okapi", mode="keyword")) == ["ephemeral okapi"]

    await call(client, "delete_artifact", {"artifact_id": gone["artifact_id"]})
    assert names(await search(client, "zebra", mode="keyword")) == []

    updated = await call(client, "update_artifact", {"artifact_id": old["artifact_id"],
                                                      "content": "hippo teeth are big", "wait_for_index": True})
    new = updated["artifact"]
    assert (await search(client, "giraffe", mode="keyword"))["results"] == []
    hits = (await search(client, "hippo", mode="keyword"))["results"]
    assert [h["artifact"]["artifact_id"] for h in hits] == [new["artifact_id"]] and hits[0]["artifact"]["version"] == 2

    # Once the TTL passes (the sweeper has not run), search must not return it.
    expires = datetime.fromisoformat(short["expires_at"])
    await anyio.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.1)
    assert names(await search(client, "okapi", mode="keyword")) == []
    assert (await call(client, "get_artifact", {"artifact_id": short["artifact_id"], "include_expired": True}))


async def test_deleting_latest_version_reindexes_previous(client: Client) -> None:
    v1 = await create(client, "doc", "aardvark facts")
    v2 = (await call(client, "update_artifact", {"artifact_id": v1["artifact_id"], "content": "badger facts",
                                                 "wait_for_index": True}))["artifact"]
    assert names(await search(client, "aardvark", mode="keyword")) == []
    await call(client, "delete_artifact", {"artifact_id": v2["artifact_id"], "all_versions": False})
    with anyio.fail_after(20):
        while not (await search(client, "aardvark", mode="keyword"))["results"]:
            await anyio.sleep(0.05)
    assert names(await search(client, "badger", mode="keyword")) == []


async def test_metadata_updates_apply_to_filters_at_once(client: Client) -> None:
    art = await create(client, "tagged", "quokka sightings", tags=["zoo"], thread_id="t1")
    assert names(await search(client, "quokka", tags=["zoo"], thread_id="t1")) == ["tagged"]
    await call(client, "update_artifact", {"artifact_id": art["artifact_id"], "tags": ["wild"], "thread_id": "t2"})
    assert names(await search(client, "quokka", tags=["zoo"])) == []
    assert names(await search(client, "quokka", thread_id="t1")) == []
    assert names(await search(client, "quokka", tags=["wild"], thread_id="t2")) == ["tagged"]


async def test_filters(client: Client) -> None:
    await create(client, "a report", "lemur census", artifact_type="report", tags=["x", "y"], thread_id="t1")
    await create(client, "a summary", "lemur summary", artifact_type="summary", tags=["x"], thread_id="t2")
    assert set(names(await search(client, "lemur"))) == {"a report", "a summary"}
    assert names(await search(client, "lemur", artifact_types=["summary"])) == ["a summary"]
    assert names(await search(client, "lemur", tags=["x", "y"])) == ["a report"]
    assert names(await search(client, "lemur", thread_id="t2")) == ["a summary"]
    result = await search(client, "lemur", min_score=0.99)
    assert all(h["score"] >= 0.99 for h in result["results"]) and len(result["results"]) == 1


async def test_scope_never_leaks(client: Client) -> None:
    await create(client, "mine", "capybara plans")
    await create(client, "other ns", "capybara secrets", namespace_id="ns2")
    await create(client, "other ws", "capybara ledger", workspace_id="ws2")
    await create(client, "other org", "capybara payroll", org_id="org2")
    for mode in ("hybrid", "semantic", "keyword"):
        assert names(await search(client, "capybara", mode=mode)) == ["mine"], mode
        assert names(await search(client, "capybara", mode=mode, namespace_id="ns2")) == ["other ns"]
        assert names(await search(client, "capybara", mode=mode, workspace_id="ws2")) == ["other ws"]
        assert names(await search(client, "capybara", mode=mode, org_id="org2")) == ["other org"]
    # BM25 statistics come from the caller's visible chunks only: other tenants change nothing.
    alone = (await search(client, "capybara", mode="keyword"))["results"][0]["score"]
    for i in range(5):
        await create(client, f"noise {i}", "capybara capybara", namespace_id="ns3")
    assert (await search(client, "capybara", mode="keyword"))["results"][0]["score"] == alone


async def test_promote_shares_within_workspace_only(client: Client) -> None:
    art = await create(client, "style guide", "wombat naming conventions", namespace_id="team-a", ttl_seconds=3600,
                       thread_id="t9")
    assert names(await search(client, "wombat", namespace_id="team-b")) == []
    promoted = await call(client, "promote_artifact", {"artifact_id": art["artifact_id"], "namespace_id": "team-a",
                                                       "source_name": "Style guide"})
    assert promoted["artifact_id"] == art["artifact_id"] and promoted["source_id"].startswith("src_")
    assert promoted["source_name"] == "Style guide" and not promoted["already_promoted"] and promoted["message"]
    again = await call(client, "promote_artifact", {"artifact_id": art["artifact_id"], "namespace_id": "team-a"})
    assert again["source_id"] == promoted["source_id"] and again["already_promoted"]

    got = await call(client, "get_artifact", {"artifact_id": art["artifact_id"], "namespace_id": "team-a"})
    assert got["is_pinned"] and got["ttl_seconds"] is None and got["expires_at"] is None
    assert got["promoted_to_source_id"] == promoted["source_id"] and got["index_collection"] == "sources"

    hit = (await search(client, "wombat", namespace_id="team-b", thread_id="other"))["results"]
    assert [h["artifact"]["name"] for h in hit] == ["style guide"] and hit[0]["from_source"]
    assert names(await search(client, "wombat", namespace_id="team-b", include_sources=False)) == []
    assert names(await search(client, "wombat", workspace_id="ws-else")) == []
    assert names(await search(client, "wombat", org_id="org-else")) == []
    # A new version of a source stays a source.
    await call(client, "update_artifact", {"artifact_id": art["artifact_id"], "namespace_id": "team-a",
                                           "content": "numbat naming conventions", "wait_for_index": True})
    assert names(await search(client, "numbat", namespace_id="team-b")) == ["style guide"]


async def test_combined_context_budget_and_citations(client: Client) -> None:
    body = " ".join(f"Finding {i}: the tapir population rose in region {i}." for i in range(200))
    a = await create(client, "tapir study", body)
    b = await create(client, "tapir note", "A tapir was seen.")
    result = await search(client, "tapir population", max_context_tokens=120)
    ctx = result["combined_context"]
    assert 0 < result["context_tokens"] <= 120 and count_tokens(ctx) == result["context_tokens"]
    assert a["artifact_id"] in ctx or b["artifact_id"] in ctx
    first = result["results"][0]["artifact"]
    assert ctx.startswith(f"[1] {first['name']} (artifact_id: {first['artifact_id']}")
    assert (await search(client, "tapir", max_context_tokens=0))["combined_context"] == ""
    wide = await search(client, "tapir", max_context_tokens=4000)
    assert a["artifact_id"] in wide["combined_context"] and b["artifact_id"] in wide["combined_context"]


def _pdf(text: str) -> bytes:
    writer = PdfWriter()
    page = writer.add_blank_page(width=612, height=792)
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject({
        NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})})
    page[NameObject("/Contents")] = writer._add_object(stream)
    import io

    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


async def test_chunk_offsets_point_at_the_text(client: Client) -> None:
    markdown = "# Intro\n\nPangolins are scaly.\n\n## Diet\n\nPangolins eat ants and termites.\n\n" + \
        "\n\n".join(f"## Section {i}\n\n" + "Filler sentence about other topics. " * 30 for i in range(6))
    code = "import os\n\n\ndef pangolin_count(path):\n    return len(os.listdir(path))\n\n\n" + \
        "\n\n".join(f"def helper_{i}(x):\n    return x * {i}\n" for i in range(80))
    data = {"animals": [{"name": f"animal {i}", "note": "ordinary"} for i in range(60)] +
            [{"name": "pangolin", "note": "eats termites"}]}
    cases = [
        (await create(client, "md", markdown, mime_type="text/markdown"), "termites", markdown),
        (await create(client, "code.py", code, mime_type="text/x-python"), "pangolin_count", code),
        (await create(client, "data", data), "pangolin termites", json.dumps(data, indent=2)),
    ]
    pdf = await call(client, "upload_artifact", {"name": "paper.pdf", "wait_for_index": True,
                                                 "data_base64": base64.b64encode(_pdf("Pangolins roll up")).decode()})
    assert pdf["mime_type"] == "application/pdf" and pdf["is_indexed"], pdf
    for art, _, _ in cases:
        assert art["chunk_count"] > 1 or art["name"] == "data", art["name"]
    for art, query, source in cases:
        hits = (await search(client, query, mode="keyword", top_k=20))["results"]
        hit = next(h for h in hits if h["artifact"]["artifact_id"] == art["artifact_id"])
        span = source[hit["chunk_start"]:hit["chunk_end"]]
        assert span and span in hit["matched_chunk"], (art["name"], span[:80], hit["matched_chunk"][:80])
        assert query.split()[0] in span
    got = await call(client, "get_artifact", {"artifact_id": pdf["artifact_id"]})
    assert "Pangolins roll up" in got["content_text"]
    hit = (await search(client, "roll up", mode="keyword"))["results"][0]
    assert hit["artifact"]["artifact_id"] == pdf["artifact_id"]
    assert got["content_text"][hit["chunk_start"]:hit["chunk_end"]] in hit["matched_chunk"]


async def test_file_without_text_found_by_description(client: Client) -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()
    art = await call(client, "upload_artifact", {"name": "chart.png", "data_base64": png, "wait_for_index": True,
                                                 "description": "revenue chart for the axolotl project"})
    assert art["is_indexed"] and art["chunk_count"] == 1
    assert names(await search(client, "axolotl revenue")) == ["chart.png"]


async def test_bad_input_changes_nothing(client: Client) -> None:
    art = await create(client, "x", "ibex")
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("query_artifacts", {"query": ""}, "query"),
        ("query_artifacts", {"query": "   "}, "query"),
        ("query_artifacts", {"query": "x", "top_k": 0}, "top_k"),
        ("query_artifacts", {"query": "x", "top_k": 101}, "top_k"),
        ("query_artifacts", {"query": "x", "mode": "fuzzy"}, "mode"),
        ("query_artifacts", {"query": "x", "min_score": 1.5}, "min_score"),
        ("query_artifacts", {"query": "x", "max_context_tokens": -1}, "max_context_tokens"),
        ("query_artifacts", {"query": "x" * 5000}, "query"),
        ("query_artifacts", {"query": "x", "namespace_id": "../etc"}, "namespace_id"),
        ("query_artifacts", {"query": "x", "bogus": 1}, "bogus"),
        ("query_artifacts", {"query": 42}, "query"),
        ("promote_artifact", {"artifact_id": "art_" + "0" * 32}, "no artifact"),
        ("promote_artifact", {"artifact_id": "nope"}, "artifact_id"),
        ("promote_artifact", {"artifact_id": art["artifact_id"], "namespace_id": "elsewhere"}, "no artifact"),
        ("promote_artifact", {"artifact_id": art["artifact_id"], "source_name": ""}, "source_name"),
        ("list_artifact_jobs", {"artifact_id": "art_" + "1" * 32}, "no artifact"),
        ("list_artifact_jobs", {"artifact_id": art["artifact_id"], "workspace_id": "w2"}, "no artifact"),
        ("create_artifact", {"name": "y", "content": "z", "wait_for_index": "soon"}, "wait_for_index"),
        ("create_artifact", {"name": "y", "content": "z", "wait_timeout_seconds": 0}, "wait_timeout_seconds"),
    ]
    for tool, args, needle in bad:
        message = await call_error(client, tool, args)
        assert needle in message, (tool, args, message)
    got = await call(client, "get_artifact", {"artifact_id": art["artifact_id"]})
    assert got["promoted_to_source_id"] is None and not got["is_pinned"]
    assert (await call(client, "list_artifacts", {}))["total"] == 1


@pytest.fixture
def flaky_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={
        "embedding_model": "class:tests.support_embeddings:FlakyEmbedding",
        "embedding_kwargs": {"failures": 2, "counter_file": str(tmp_path / "calls")},
        "index_retry_backoff_seconds": 0.05,
    })


async def test_job_retries_until_the_embedding_works(flaky_settings: Settings) -> None:
    app, _ = build_app(flaky_settings)
    async with Client(app) as client:
        art = await call(client, "create_artifact", {"name": "r", "content": "retry me", "wait_for_index": True,
                                                     "wait_timeout_seconds": 30})
        assert art["is_indexed"] and art["status"] == "ready" and art["index_attempts"] == 3
        assert art["index_error"] is None
        jobs = (await call(client, "list_artifact_jobs", {"artifact_id": art["artifact_id"]}))["jobs"]
        assert [(j["status"], j["attempts"], j["error"]) for j in jobs] == [("succeeded", 3, None)]
        assert names(await search(client, "retry", mode="keyword")) == ["r"]


async def test_job_gives_up_after_max_attempts(flaky_settings: Settings) -> None:
    settings = flaky_settings.model_copy(update={"index_max_attempts": 2})
    app, _ = build_app(settings)
    async with Client(app) as client:
        art = await call(client, "create_artifact", {"name": "r", "content": "never", "wait_for_index": True,
                                                     "wait_timeout_seconds": 30})
        assert not art["is_indexed"] and art["status"] == "failed" and art["index_attempts"] == 2
        assert "simulated failure 2" in art["index_error"]
        jobs = (await call(client, "list_artifact_jobs", {"artifact_id": art["artifact_id"]}))["jobs"]
        assert [(j["status"], j["attempts"]) for j in jobs] == [("failed", 2)]
        assert "simulated failure" in jobs[0]["error"]


async def test_progress_notifications_while_waiting(client: Client) -> None:
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    result = await client.call_tool("create_artifact", {"name": "p", "content": "progress please",
                                                        "wait_for_index": True}, progress_callback=on_progress)
    assert not result.is_error and result.structured_content["is_indexed"]
    assert seen and seen[-1][0] == 1.0 and any("index" in (m or "") for _, m in seen)

