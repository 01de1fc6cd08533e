"""The people's CLI (`artifact-mcp import | export | restore | ls | show | search | stats`), each command its own
process while an `artifact-mcp serve` stdio subprocess owns the data directory (or, for a fresh store, alone)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import tarfile
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.conftest import call, server_env
from tests.support_cli import cli, cli_json, mixed_folder, serving
from tests.test_stdio import server_command

pytestmark = pytest.mark.anyio

TIMEOUT = 240
# At most this many artifacts in a write burst: with every hit within a search's top_k, hits tied on score compare
# as sets.
BURST_MAX = 60


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def settled(data_dir: Path) -> dict[str, Any]:
    """stats once the server has run every index job."""
    while True:
        stats = await cli_json(data_dir, "stats")
        if stats["jobs_pending"] + stats["jobs_running"] == 0:
            return stats
        await anyio.sleep(0.3)


async def test_import_folder_then_reimport_then_change_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    files = mixed_folder(tmp_path / "src")
    with anyio.fail_after(TIMEOUT):
        async with serving(data, tmp_path / "serve.log") as client:
            done = await cli(data, "import", str(tmp_path / "src"), "--recursive", "--tags", "batch,cli", "--json")
            assert done.returncode == 0, done.stderr
            first = json.loads(done.stdout)
            assert (first["files"], first["created"], first["failed"]) == (200, 200, 0)
            # Progress, one line per file off a terminal, on stderr; stdout is the JSON alone.
            assert "importing 200/200 created" in done.stderr
            by_path = {i["path"]: i for i in first["items"]}
            assert set(by_path) == set(files)

            stats = await settled(data)
            assert stats["by_type"] == {"document": 80, "code": 40, "json": 40, "image": 40}
            assert stats["versions"] == 200 and stats["blobs"] == 200 and stats["jobs_failed"] == 0
            # The server sees what the CLI wrote.
            listed = await call(client, "list_artifacts", {"limit": 1, "tags": ["batch"]})
            assert listed["total"] == 200

            again = await cli_json(data, "import", str(tmp_path / "src"), "--recursive", "--tags", "batch,cli")
            assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 200)
            assert (await cli_json(data, "stats"))["versions"] == 200

            md = next(p for p in files if p.endswith("file005.md"))
            Path(md).write_text("# Note 5\n\nRewritten: the keyword zq005word is now beside newword.\n")
            changed = await cli_json(data, "import", str(tmp_path / "src"), "-r")
            assert (changed["created"], changed["updated"], changed["unchanged"]) == (0, 1, 199)
            new = next(i for i in changed["items"] if i["outcome"] == "updated")
            assert new["path"] == md and new["version"] == 2
            shown = await cli_json(data, "show", new["artifact_id"])
            assert shown["versions"]["total"] == 2
            assert shown["artifact"]["content_text"].startswith("# Note 5\n\nRewritten")
            assert shown["artifact"]["metadata"]["imported_from"] == md
            assert (await settled(data))["versions"] == 201

            hits = await cli_json(data, "search", "newword", "--mode", "keyword")
            assert [h["artifact"]["artifact_id"] for h in hits["results"]] == [new["artifact_id"]]
            hits = await cli_json(data, "search", "zq015word")
            assert hits["results"][0]["artifact"]["name"] == "file015.md"
            page = await cli_json(data, "ls", "--limit", "5", "--type", "code")
            assert page["total"] == 40 and len(page["artifacts"]) == 5
            assert all(a["artifact_type"] == "code" for a in page["artifacts"])

            # The tables, for people.
            table = await cli(data, "ls", "--limit", "3")
            assert table.returncode == 0 and "of 200" in table.stdout and "art_" in table.stdout
            table = await cli(data, "stats")
            assert "artifacts" in table.stdout and "201" in table.stdout


async def test_import_only_matching_files_not_recursive_with_thread_and_type(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mixed_folder(tmp_path / "src", n=20)
    top = tmp_path / "src" / "part1"
    with anyio.fail_after(TIMEOUT):
        async with serving(data, tmp_path / "serve.log"):
            made = await cli_json(data, "import", str(top), "--glob", "*.md", "--glob", "*.py", "--thread", "t1",
                                  "--type", "notes")
            names = sorted(Path(i["path"]).name for i in made["items"])
            # part1 holds files 1 (py), 5 (md), 13 (pdf), 17 (json) and deep/9, skipped without --recursive
            assert names == ["file001.py", "file005.md"]
            assert all(Path(i["path"]).parent == top.resolve() for i in made["items"])
            page = await cli_json(data, "ls", "--thread", "t1")
            assert {a["artifact_type"] for a in page["artifacts"]} == {"notes"}
            assert page["total"] == made["created"] > 0
            # The same files in another thread are other artifacts.
            other = await cli_json(data, "import", str(top), "--glob", "*.md", "--thread", "t2")
            assert other["created"] == 1


async def _burst(client: Client, stop: anyio.Event, made: list[str]) -> None:
    n = 0
    while not stop.is_set() and n < BURST_MAX:
        art = await call(client, "create_artifact", {"name": f"burst {n}", "content": f"burst words {n}"})
        made.append(art["artifact_id"])
        if n % 3 == 0:
            upd = await call(client, "update_artifact", {"artifact_id": art["artifact_id"], "content": f"v2 {n}"})
            made.append(upd["artifact"]["artifact_id"])
        n += 1


def manifest(archive: Path) -> list[dict[str, Any]]:
    if archive.is_dir():
        text = (archive / "manifest.jsonl").read_text()
    else:
        with tarfile.open(archive) as tar:
            fh = tar.extractfile("manifest.jsonl")
            assert fh is not None
            text = fh.read().decode()
    return [json.loads(line) for line in text.splitlines()]


def blob_files(data_dir: Path) -> dict[str, bytes]:
    root = data_dir / "blobs"
    return {p.name: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "tmp"}


async def test_export_during_writes_then_restore_into_fresh_store(tmp_path: Path) -> None:
    data, fresh, again = tmp_path / "data", tmp_path / "fresh", tmp_path / "again"
    mixed_folder(tmp_path / "src", n=30)
    with anyio.fail_after(TIMEOUT):
        async with serving(data, tmp_path / "serve.log") as client:
            seeded = await cli_json(data, "import", str(tmp_path / "src"), "-r")
            note = await call(client, "create_artifact", {"name": "plan", "content": "the migration plan, first"})
            note2 = await call(client, "update_artifact", {"artifact_id": note["artifact_id"],
                                                           "content": "the migration plan, revised"})
            before = {i["artifact_id"] for i in seeded["items"]} | {note["artifact_id"],
                                                                  note2["artifact"]["artifact_id"]}
            stop, made = anyio.Event(), []
            async with anyio.create_task_group() as tg:
                tg.start_soon(_burst, client, stop, made)
                while len(made) < 3:
                    await anyio.sleep(0.05)
                exported = await cli_json(data, "export", str(tmp_path / "cut.tar.gz"))
                stop.set()
            assert made, "the burst wrote while the export ran"
            lines = manifest(tmp_path / "cut.tar.gz")
            ids = [v["artifact_id"] for v in lines]
            assert exported["versions"] == len(lines) and exported["vanished"] == 0
            assert before <= set(ids) and len(ids) == len(set(ids))
            # Oldest first: an artifact's versions come in version order.
            seen: dict[str, int] = {}
            for v in lines:
                assert v["version"] == seen.get(v["root_artifact_id"], 0) + 1
                seen[v["root_artifact_id"]] = v["version"]
            await settled(data)
            quiet = await cli_json(data, "export", str(tmp_path / "quiet"))
            assert quiet["versions"] == len(before) + len(made)
            # Restoring into the store it came from finds everything present and changes nothing.
            same = await cli_json(data, "restore", str(tmp_path / "quiet"))
            assert (same["restored"], same["present"]) == (0, quiet["versions"])
            queries = ["migration plan", "zq010word", "burst words"]
            want = [await cli_json(data, "search", q, "--top-k", "100") for q in queries]
            source_blobs = blob_files(data)

        # Into a store no server owns: the CLI owns it for the moment; indexing waits for the next server.
        cut = await cli_json(fresh, "restore", str(tmp_path / "cut.tar.gz"))
        assert (cut["restored"], cut["present"]) == (len(lines), 0)
        full = await cli_json(again, "restore", str(tmp_path / "quiet"))
        assert full["restored"] == quiet["versions"]
        twice = await cli_json(again, "restore", str(tmp_path / "quiet"))
        assert (twice["restored"], twice["present"]) == (0, quiet["versions"])
        for target in (fresh, again):
            restored_blobs = blob_files(target)
            assert restored_blobs and all(source_blobs[k] == v for k, v in restored_blobs.items())
            assert all(hashlib.sha256(v).hexdigest() == k for k, v in restored_blobs.items())

        async with serving(fresh, tmp_path / "fresh.log") as client:
            for line in lines:
                got = await call(client, "get_artifact", {"artifact_id": line["artifact_id"], "max_chars": 0})
                assert (got["root_artifact_id"], got["version"], got["name"], got["sha256"], got["tags"],
                        got["metadata"], got["size_bytes"]) == (
                    line["root_artifact_id"], line["version"], line["name"], line["sha256"], line["tags"],
                    line["metadata"], line["size_bytes"])
                created = datetime.fromisoformat(got["created_at"].replace("Z", "+00:00")).replace(tzinfo=None)
                assert created == datetime.fromisoformat(line["created_at"])
            versions = await call(client, "list_artifact_versions", {"artifact_id": note["artifact_id"]})
            assert [(v["version"], v["is_latest"]) for v in versions["versions"]] == [(1, False), (2, True)]
        async with serving(again, tmp_path / "again.log"):
            stats = await settled(again)
            assert stats["versions"] == quiet["versions"] and stats["jobs_failed"] == 0
            got = [await cli_json(again, "search", q, "--top-k", "100") for q in queries]
        for a, b in zip(want, got, strict=True):
            # The same hits with the same scores; hits tied on score may come in another order (a restore indexes
            # in its own order).
            assert a["total_results"] == b["total_results"] == len(a["results"]) > 0
            assert [round(h["score"], 4) for h in a["results"]] == [round(h["score"], 4) for h in b["results"]]
            assert sorted((round(h["score"], 4), h["artifact"]["artifact_id"]) for h in a["results"]) == sorted(
                (round(h["score"], 4), h["artifact"]["artifact_id"]) for h in b["results"])
            scores = [round(h["score"], 4) for h in a["results"]]
            if len(set(scores)) == len(scores):  # numbered by rank, so comparable when no two hits tie
                assert a["combined_context"] == b["combined_context"]
        assert a["combined_context"]


def _tar_with(path: Path, members: dict[str, bytes]) -> Path:
    import io

    with tarfile.open(path, "w") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


async def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mixed_folder(tmp_path / "src", n=10)
    with anyio.fail_after(TIMEOUT):
        async with serving(data, tmp_path / "serve.log"):
            await cli_json(data, "import", str(tmp_path / "src"), "-r")
            good = tmp_path / "good"
            await cli_json(data, "export", str(good))
            await cli_json(data, "export", str(tmp_path / "good.tgz"))
            before = await settled(data)

            async def refused(*args: str) -> str:
                done = await cli(data, *args)
                assert done.returncode != 0, done.stdout
                assert done.stdout == ""
                assert "Traceback" not in done.stderr
                return done.stderr

            assert "no such file or directory" in await refused("import", str(tmp_path / "missing"),
                                                                str(tmp_path / "src"))
            assert "no artifact 'art_" in await refused("show", "art_" + "0" * 32)
            assert "exists" in await refused("export", str(good))
            assert "no such archive" in await refused("restore", str(tmp_path / "nowhere.tar"))
            junk = tmp_path / "junk.tar"
            junk.write_bytes(os.urandom(5000))
            assert "not a readable tar file" in await refused("restore", str(junk))
            whole = (tmp_path / "good.tgz").read_bytes()
            cut = tmp_path / "cut.tgz"
            cut.write_bytes(whole[: len(whole) * 2 // 3])
            assert "not a usable artifact-mcp archive" in await refused("restore", str(cut))
            # A directory archive missing its last lines: the header's count and hash catch it.
            lines = (good / "manifest.jsonl").read_text().splitlines(keepends=True)
            short = tmp_path / "short"
            (short / "blobs").mkdir(parents=True)
            for p in (good / "blobs").iterdir():
                (short / "blobs" / p.name).write_bytes(p.read_bytes())
            (short / "archive.json").write_text((good / "archive.json").read_text())
            (short / "manifest.jsonl").write_text("".join(lines[:-2]))
            assert "truncated or edited" in await refused("restore", str(short))
            # A sealed manifest whose line names an id that is not one (a hand-made archive).
            (short / "manifest.jsonl").write_text(lines[0].replace('"artifact_id":"art_', '"artifact_id":"../art_')
                                                  + "".join(lines[1:]))
            header = json.loads((good / "archive.json").read_text())
            header["manifest_sha256"] = hashlib.sha256((short / "manifest.jsonl").read_bytes()).hexdigest()
            (short / "archive.json").write_text(json.dumps(header))
            assert "manifest.jsonl line 1: artifact_id" in await refused("restore", str(short))
            (short / "archive.json").write_text(json.dumps({**header, "format_version": 9}))
            assert "newer than this artifact-mcp reads" in await refused("restore", str(short))
            (short / "archive.json").write_text("{}")
            assert "is not an archive header" in await refused("restore", str(short))
            # A blob whose bytes no longer match its name.
            victim = next((good / "blobs").iterdir())
            victim.write_bytes(victim.read_bytes() + b"tampered")
            assert "altered or damaged" in await refused("restore", str(good))
            # Names that would climb out of the archive, or links.
            escape = _tar_with(tmp_path / "escape.tar", {"../../evil.txt": b"x", "archive.json": b"{}"})
            assert "not a name the format has" in await refused("restore", str(escape))
            sneaky = _tar_with(tmp_path / "sneaky.tar", {"blobs/../../../evil.txt": b"x"})
            assert "not a name the format has" in await refused("restore", str(sneaky))
            linked = tmp_path / "linked.tar"
            with tarfile.open(linked, "w") as tar:
                info = tarfile.TarInfo("blobs/" + "a" * 64)
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            assert "link or device" in await refused("restore", str(linked))
            assert not (tmp_path / "evil.txt").exists() and not Path("/evil.txt").exists()

            after = await settled(data)
            assert {k: after[k] for k in ("artifacts", "versions", "blobs", "blob_bytes")} == {
                k: before[k] for k in ("artifacts", "versions", "blobs", "blob_bytes")}


async def test_ctrl_c_mid_import_then_rerun_completes_without_duplicates(tmp_path: Path) -> None:
    data = tmp_path / "data"
    mixed_folder(tmp_path / "src")
    with anyio.fail_after(TIMEOUT):
        async with serving(data, tmp_path / "serve.log"):
            proc = subprocess.Popen(
                [server_command(), "import", str(tmp_path / "src"), "-r", "--data-dir", str(data)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=server_env(), text=True)
            assert proc.stderr is not None
            seen = 0
            while seen < 40:
                line = await anyio.to_thread.run_sync(proc.stderr.readline)
                assert line, "the import ended before it was interrupted"
                seen += line.startswith("importing ")
            proc.send_signal(signal.SIGINT)
            _, err = await anyio.to_thread.run_sync(proc.communicate)
            assert proc.returncode == 130, err
            assert "interrupted" in err
            partial = (await cli_json(data, "stats"))["artifacts"]
            assert 40 <= partial < 200

            rerun = await cli_json(data, "import", str(tmp_path / "src"), "-r")
            assert rerun["created"] + rerun["unchanged"] == 200 and rerun["failed"] == 0
            assert rerun["unchanged"] >= 40
            stats = await cli_json(data, "stats")
            assert (stats["artifacts"], stats["versions"]) == (200, 200)
            paths = set()
            cursor: list[str] = []
            while True:
                page = await cli_json(data, "ls", "--limit", "200", *cursor)
                paths |= {a["artifact_id"] for a in page["artifacts"]}
                if not page["has_more"]:
                    break
                cursor = ["--cursor", page["next_cursor"]]
            assert len(paths) == 200
