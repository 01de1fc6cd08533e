"""End to end with the real default embedding model (all-MiniLM-L6-v2, bundled, offline, on ONNX Runtime), over
stdio."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp.client.stdio import stdio_client

from artifact_mcp.storage.index.embeddings import DEFAULT_MODEL_ID
from tests.conftest import call
from tests.test_stdio import open_client, stdio_params

pytestmark = pytest.mark.anyio


def mapped_libraries(data_dir: Path) -> set[str]:
    """The shared libraries mapped by the server serving `data_dir` (found by its command line)."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in cmdline and str(data_dir).encode() in cmdline:
            maps = (proc / "maps").read_text().splitlines()
            return {line.split()[-1] for line in maps if ".so" in line}
    raise AssertionError(f"no server process serves {data_dir}")

DOCS = {
    "Cat care": "Cats sleep for most of the day and like to nap in warm, sunny spots.",
    "Quarterly finance": "Revenue grew twenty percent in the third quarter; operating costs stayed flat.",
    "Deploy guide": "To release the service, build the container image and run the rollout with kubectl.",
}


async def test_semantic_search_with_the_default_model(tmp_path: Path) -> None:
    # HF_HUB_OFFLINE makes any attempt to reach the hub fail loudly instead of hanging.
    params = stdio_params(tmp_path / "data", tmp_path, env={"ARTIFACT_MCP_EMBEDDING_MODEL": "default",
                                                              "HF_HUB_OFFLINE": "1"})
    with (tmp_path / "stderr.log").open("w") as errlog:
        async with open_client(stdio_client(params, errlog=errlog), "legacy") as client:
            with anyio.fail_after(180):
                ids = {}
                for name, text in DOCS.items():
                    art = await call(client, "create_artifact", {"name": name, "content": text,
                                                                 "wait_for_index": True})
                    assert art["is_indexed"], art
                    assert art["embedding_model_id"] == DEFAULT_MODEL_ID
                    ids[name] = art["artifact_id"]
                # Paraphrases with no word in common with the right artifact.
                paraphrases = [("feline naps", "Cat care"), ("how much did income increase", "Quarterly finance"),
                               ("shipping a new version to production", "Deploy guide")]
                for query, expected in paraphrases:
                    result = await call(client, "query_artifacts", {"query": query, "mode": "semantic"})
                    assert result["results"][0]["artifact"]["name"] == expected, (query, result["results"])
                    hybrid = await call(client, "query_artifacts", {"query": query})
                    assert hybrid["results"][0]["artifact"]["artifact_id"] == ids[expected], query
                    assert ids[expected] in hybrid["combined_context"]
                # The model ran on ONNX Runtime, and torch was never loaded (the test venv has it installed).
                libraries = mapped_libraries(tmp_path / "data")
                assert any("onnxruntime" in lib for lib in libraries), libraries
                assert not [lib for lib in libraries if "torch" in lib]
