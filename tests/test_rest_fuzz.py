"""Fuzz the REST mirror from its own OpenAPI document (schemathesis) against a live server on 127.0.0.1.

Checks: no 5xx (`not_a_server_error`), every response matches its documented schema
(`response_schema_conformance`) and status code (`status_code_conformance`). Positive and negative cases, each
once at random scopes and ids and once at the fuzzer's scope and a live artifact (so the handlers past
validation run too). The run's numbers are printed (pytest -s) and written next to the server's data directory
as fuzz-summary.json.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.strategies import SearchStrategy
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.conftest import TEST_EMBEDDING
from tests.support_http import bearer, create_token, serve_http
from tests.test_stdio import TIMEOUT

SCOPE = "/v1/orgs/fuzz/workspaces/ws/namespaces/main"
# Per operation, generation mode and target: 4 x 15 = 60 cases per operation, about a minute in all on 2 shared
# cores. REST_FUZZ_EXAMPLES=200 for a longer hunt.
EXAMPLES = int(os.environ.get("REST_FUZZ_EXAMPLES", "15"))
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


class Live:
    def __init__(self, port: int, token: str, data_dir: Path) -> None:
        self.port, self.token, self.data_dir = port, token, data_dir
        self.base = f"http://127.0.0.1:{port}"
        self.statuses: Counter[str] = Counter()
        self.per_operation: Counter[str] = Counter()

    def fresh_artifact(self) -> str:
        r = httpx.post(f"{self.base}{SCOPE}/artifacts", headers=bearer(self.token), timeout=TIMEOUT,
                       json={"name": "fuzz target", "content": "fuzzing text about tapirs", "tags": ["fuzz"]})
        assert r.status_code == 201, r.text
        return r.json()["artifact_id"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data = tmp_path_factory.mktemp("fuzz") / "data"
    data.mkdir()
    # every scope: the fuzzer reaches the handlers; the default scope makes Aimable space `main` = fuzz/ws/main
    token = create_token(data, "fuzzer", ["*"], ["admin"], "fuzz/ws/main")
    # A small upload limit keeps generated bodies honest about 413 without giant requests.
    with serve_http(data, "--embedding-model", TEST_EMBEDDING, "--max-upload-bytes", "65536") as port:
        state = Live(port, token, data)
        yield state
        summary = {"operations": len(state.per_operation), "cases": sum(state.per_operation.values()),
                   "per_operation": dict(state.per_operation), "statuses": dict(sorted(state.statuses.items()))}
        print("\nREST fuzz summary:", json.dumps(summary, indent=1))
        (data.parent / "fuzz-summary.json").write_text(json.dumps(summary, indent=1))


def _short(path: str) -> str:
    """MechaMental paths without their scope prefix; Aimable paths as `spaces:/…`."""
    mecha = "/v1/orgs/{org_id}/workspaces/{workspace_id}/namespaces/{namespace_id}"
    if path.startswith(mecha):
        return path.removeprefix(mecha) or "/"
    return "spaces:" + path.removeprefix("/v1/spaces/{space_id}")


def _fuzz(live: Live, strategy: SearchStrategy[schemathesis.Case], key: str, failures: list[str]) -> None:
    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def run(case: schemathesis.Case) -> None:
        live.per_operation[key.split(" [")[0]] += 1
        try:
            response = case.call_and_validate(headers=bearer(live.token), checks=CHECKS, timeout=TIMEOUT)
        except (Exception, BaseExceptionGroup) as exc:  # collect every failure, then report them all at once
            failures.append(f"{key}: {exc}\n  {case.as_curl_command()}")
            live.statuses[f"{key} FAILED"] += 1
            return
        live.statuses[f"{key} {response.status_code}"] += 1

    run()


def test_rest_api_fuzz(live: Live) -> None:
    # Drives schemathesis's strategies with Hypothesis directly: its pytest plugin (from_fixture) does not run
    # under pytest 9 (it reads a private node attribute that pytest 9 removed).
    schema = schemathesis.openapi.from_url(f"{live.base}/openapi.json")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path.startswith("/v1/")]
    assert len(operations) >= 12, [op.label for op in operations]
    for op in operations:
        for mode, target in itertools.product(GenerationMode, ("random", "live")):
            fixed: dict[str, str] = {}
            if target == "live":
                fixed = {"org_id": "fuzz", "workspace_id": "ws", "namespace_id": "main", "space_id": "main"}
                fixed = {k: v for k, v in fixed.items() if "{" + k + "}" in op.path}
                if "{artifact_id}" in op.path:
                    fixed["artifact_id"] = live.fresh_artifact()
            strategy = op.as_strategy(generation_mode=mode, path_parameters=fixed)

            _fuzz(live, strategy, f"{op.method.upper()} {_short(op.path)} [{mode}, {target}]", failures)
    assert not failures, f"{len(failures)} failing cases:\n" + "\n".join(failures[:20])
    # Every operation was also driven past validation to a success, not only to 4xx answers. (Generation succeeds
    # only when random input names material that exists: too rare to require.)
    succeeded = {key.split(" [")[0] for key, n in live.statuses.items() if n and key.split()[-1][0] in "23"}
    expected = set(live.per_operation) - {"POST /artifacts/generate", "POST spaces:/artifacts/generate"}
    assert expected <= succeeded, expected - succeeded
