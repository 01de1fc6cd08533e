"""The official MCP conformance suite (npm @modelcontextprotocol/conformance, run on the project-local Node 22)
against the real `artifact-mcp serve --transport http`, at spec revisions 2025-11-25 and 2026-07-28.

Checks that call the suite's own fixtures (tools `test_*`, resources `test://…`, prompts) are listed in
conformance-expected-failures.yml; the suite itself fails the run on any other failure and on a stale entry.
On top of its exit code, this test reads the checks it wrote and asserts that every generic scenario ran and
passed, and that every message the server sent matched the spec's JSON schema.

The server runs with `--auth none`: the suite has no option to send an Authorization header.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from tests.conftest import REPO, TEST_EMBEDDING, call
from tests.support_http import mcp_http, serve_http

NODE_BIN = REPO / "node_modules" / ".bin"
BASELINE = REPO / "conformance-expected-failures.yml"
SUITE_TIMEOUT = 300

# Scenarios every compliant server passes, whatever its tools: none of them may be in the baseline wholesale.
GENERIC: dict[str, set[str]] = {
    "2025-11-25": {
        "server-initialize", "server-session-lifecycle", "logging-set-level", "ping", "completion-complete",
        "tools-list", "resources-list", "prompts-list", "resources-subscribe", "resources-unsubscribe",
        "server-sse-multiple-streams", "dns-rebinding-protection",
    },
    "2026-07-28": {
        "server-stateless", "completion-complete", "tools-list", "resources-list", "prompts-list",
        "server-sse-multiple-streams", "sep-2164-resource-not-found", "dns-rebinding-protection", "caching",
        "http-header-validation", "input-required-result-unsupported-methods",
    },
}
PASSED = {"SUCCESS", "INFO"}
_RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d\d-\d\dT[\d-]+Z$")


def _suite_command() -> list[str]:
    conformance = NODE_BIN / "conformance"
    if not conformance.exists() or not (NODE_BIN / "node").exists():
        pytest.fail(f"the conformance suite is not installed ({conformance} or Node 22 at {NODE_BIN / 'node'} "
                    "missing): run `npm install --no-audit --no-fund` in the repository (`make test` does)")
    return [str(conformance)]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("conformance") / "data"
    data.mkdir()
    with serve_http(data, "--auth", "none", "--embedding-model", TEST_EMBEDDING) as port:

        async def seed() -> None:
            # One artifact, so resources/list has an entry and the caching scenario reads it.
            async with mcp_http(port) as client:
                await call(client, "create_artifact", {"name": "conformance seed", "content": "hello suite"})

        anyio.run(seed)
        yield f"http://127.0.0.1:{port}/mcp"


def _baseline_checks() -> dict[str, set[str]]:
    """scenario -> check ids excused by the baseline (per-check entries only)."""
    out: dict[str, set[str]] = defaultdict(set)
    for entry in yaml.safe_load(BASELINE.read_text())["server"]:
        scenario, _, check = entry.partition(":")
        out[scenario].add(check)
    return out


def _read_results(out_dir: Path) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    for checks in out_dir.glob("*/checks.json"):
        match = _RESULT_DIR.match(checks.parent.name)
        assert match, f"unexpected result directory {checks.parent.name}"
        results[match["scenario"]] = json.loads(checks.read_text())
    return results


def test_baseline_lists_single_fixture_checks_only() -> None:
    entries = yaml.safe_load(BASELINE.read_text())["server"]
    assert entries, "empty baseline"
    generic = set().union(*GENERIC.values())
    for entry in entries:
        scenario, sep, check = entry.partition(":")
        assert sep and check, f"{entry}: name one check (scenario:check-id), not a whole scenario"
        assert check != "wire-schema-valid", f"{entry}: schema violations are never expected"
        # server-stateless is generic, but 6 of its checks need the suite's diagnostic tools.
        assert scenario not in generic or scenario == "server-stateless", f"{entry}: generic scenario baselined"


@pytest.mark.parametrize("spec_version", ["2025-11-25", "2026-07-28"])
def test_conformance_suite(server_url: str, spec_version: str, tmp_path: Path) -> None:
    out_dir = tmp_path / "results"
    env = {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    done = subprocess.run(
        [*_suite_command(), "server", "--url", server_url, "--suite", "all", "--spec-version", spec_version,
         "--expected-failures", str(BASELINE), "-o", str(out_dir)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=SUITE_TIMEOUT,
    )
    summary = done.stdout[done.stdout.find("=== SUMMARY ==="):]
    assert done.returncode == 0, f"conformance suite failed at {spec_version}:\n{summary}\n{done.stderr[-3000:]}"

    results = _read_results(out_dir)
    missing = GENERIC[spec_version] - results.keys()
    assert not missing, f"generic scenarios did not run at {spec_version}: {sorted(missing)}"
    excused = _baseline_checks()
    for scenario in sorted(GENERIC[spec_version]):
        checks = results[scenario]
        failed = [f"{c['id']}: {c['status']} {c.get('errorMessage', '')}" for c in checks
                  if c["status"] not in PASSED and c["id"] not in excused.get(scenario, set())]
        assert not failed, f"{scenario} at {spec_version}:\n" + "\n".join(failed)
        assert any(c["status"] == "SUCCESS" for c in checks), f"{scenario} at {spec_version} passed nothing"
    # 28 checks at 2026-07-28, 6 of which need the suite's fixtures: the stateless protocol itself passes.
    if spec_version == "2026-07-28":
        stateless = [c for c in results["server-stateless"] if c["status"] == "SUCCESS"]
        assert len(stateless) >= 22, [c["id"] for c in results["server-stateless"]]

    # Every message our server sent, in every scenario (fixture ones too), is valid per the spec's schema.
    schema = [(s, c) for s, checks in results.items() for c in checks if c["id"] == "wire-schema-valid"]
    assert len(schema) >= len(GENERIC[spec_version])
    bad = [f"{s}: {c.get('details')}" for s, c in schema if c["status"] != "SUCCESS"]
    assert not bad, "\n".join(bad)
