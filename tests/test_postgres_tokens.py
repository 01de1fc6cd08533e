"""Tokens in the PostgreSQL catalog: the CLI writes the `tokens` table, and every server on that catalog verifies
against it, so a revoke made anywhere is refused on the next request everywhere."""

from __future__ import annotations

import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import server_env
from tests.support_http import serve_http

CLI = str(Path(sys.executable).with_name("artifact-mcp"))


def cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args, "--data-dir", str(data_dir)], capture_output=True, text=True, timeout=120,
                          env=server_env())


def test_a_token_made_by_the_cli_works_on_three_replicas_and_dies_on_all_when_revoked(
        postgres: Any, tmp_path: Path) -> None:
    url = postgres.new_database()
    made = cli("token", "create", "--catalog", url, "--principal", "ci", "--scope", "default/*/*",
               "--permission", "write", data_dir=tmp_path / "cli")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert not (tmp_path / "cli" / "tokens.json").exists()  # the table holds it, not a local file
    listed = cli("token", "list", "--catalog", url, data_dir=tmp_path / "cli2")
    assert '"principal_id": "ci"' in listed.stdout and token not in listed.stdout
    headers = {"Authorization": f"Bearer {token}"}
    with ExitStack() as stack:
        ports = [stack.enter_context(serve_http(tmp_path / f"replica{i}", "--catalog", url)) for i in range(3)]
        for port in ports:
            r = httpx.get(f"http://127.0.0.1:{port}/v1/orgs/default/workspaces/default/namespaces/default/artifacts",
                          headers=headers, timeout=30)
            assert r.status_code == 200, r.text
        token_id = token.split("_")[1]
        revoked = cli("token", "revoke", token_id, "--catalog", url, data_dir=tmp_path / "cli3")
        assert revoked.returncode == 0, revoked.stderr
        for port in ports:
            r = httpx.get(f"http://127.0.0.1:{port}/v1/orgs/default/workspaces/default/namespaces/default/artifacts",
                          headers=headers, timeout=30)
            assert r.status_code == 401, r.text


def test_processes_on_one_catalog_share_the_console_session_key(postgres: Any, tmp_path: Path) -> None:
    from artifact_mcp.server.auth.tokens import TokenFile

    url = postgres.new_database()
    one = TokenFile.for_catalog(url, tmp_path / "a" / "tokens.json")
    two = TokenFile.for_catalog(url, tmp_path / "b" / "tokens.json")
    try:
        key = one.shared_secret("console_session_key")
        assert key is not None and len(key) == 32 and two.shared_secret("console_session_key") == key
        assert TokenFile(tmp_path / "tokens.json").shared_secret("console_session_key") is None  # file: data dir
    finally:
        one.close()
        two.close()
