"""Building a query benchmark's catalog of N chunks fast (bench/query.py step 1; a benchmark helper, not a test).

Each distinct abstract goes once through the real store pipeline (`open_store` -> `ArtifactStore.create` ->
`claim_index_jobs` / `prepare_index` / `commit_index`: real chunking, real BM25 postings, real chunk, job and
artifact rows): the templates. The copies beyond them are written in bulk (`_clone`): the template's rows with
a fresh id, name, namespace, thread and tag (`SELECT t.* REPLACE (...)`), its postings plus the copy's name
terms in chunk 0, and the vectors the hash embedding gives the copy's text, computed from the templates'; a few
copies are re-chunked, re-termed and re-embedded by the real `Indexer` and must match (`_check_copies`). ~10x
faster than the pipeline (which runs ~100 chunks/s: 3 h for a million chunks). See bench/query.py's docstring
for what the vectors are and how the catalog is labelled afterwards (`relabel`).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import log

BUILD_BATCH = 64
OTHER_NAMESPACES = ("ns-1", "ns-2", "ns-3")


def _hash_raw(text: str, dim: int, cache: dict[str, int]) -> np.ndarray:
    """The un-normalised `hash:<dim>` vector of `text` (HashEmbedding's signed feature hashing, before its L2
    normalisation): copies of a chunk differ from it by a few tokens, so their vectors are sums of these."""
    from artifact_mcp.storage.index.tokenize import tokens

    vec = np.zeros(dim, dtype=np.float64)
    for tok in tokens(text):
        h = cache.get(tok)
        if h is None:
            h = cache[tok] = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
        vec[h % dim] += 1.0 if (h >> 63) & 1 else -1.0
    return vec


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)


def build_catalog(n_chunks: int, data_dir: Path, docs: list[tuple[str, str]], args: argparse.Namespace,
                  catalog: str | None = None) -> dict[str, Any]:
    """Create and index artifacts until the catalog holds >= n_chunks chunks: each distinct document once
    through the real pipeline (the templates), then copies of them written in bulk (`_clone`).

    `catalog`: a PostgreSQL URL to build there instead of DATA_DIR/catalog.duckdb. The bulk copies are DuckDB SQL,
    so on PostgreSQL every artifact goes through the pipeline, the documents cycled with a " (copy k)" name
    suffix (~380 chunks/s with the hash embedding: ~5 min for 100,000 chunks)."""
    from artifact_mcp.storage.index.pipeline import IndexConfig
    from artifact_mcp.storage.models import NewArtifact, Scope
    from artifact_mcp.storage.ownership.client import StoreConfig, open_store

    rng = random.Random(n_chunks)
    data_dir.mkdir(parents=True, exist_ok=True)
    cfg = StoreConfig(catalog_path=catalog or str(data_dir / "catalog.duckdb"),
                      blob_url=(data_dir / "blobs").resolve().as_uri(), memory_limit=args.build_memory_limit,
                      blob_fsync=False,
                      index=IndexConfig(embedding_model="hash:384"))
    store = open_store(cfg)
    default = Scope(org_id="default", workspace_id="default", namespace_id="default")
    others = [Scope(org_id="default", workspace_id="default", namespace_id=ns) for ns in OTHER_NAMESPACES]
    chunks = default_chunks = artifacts = default_artifacts = 0
    create_s = index_s = 0.0
    t0 = time.perf_counter()
    k = 0
    templates: list[str] = []  # artifact id of docs[i]'s template
    # 1. The templates: each document at most once, through ArtifactStore.create and the index jobs.
    cycle = catalog is not None  # PostgreSQL: no bulk copies, the documents again through the pipeline
    while chunks < n_chunks and (cycle or k < len(docs)):
        t = time.perf_counter()
        batch_default = 0
        for _ in range(BUILD_BATCH if cycle else min(BUILD_BATCH, len(docs) - k)):
            title, text = docs[k % len(docs)]
            if k >= len(docs):
                title = f"{title} (copy {k // len(docs)})"
            in_default = rng.random() >= args.other_fraction
            scope = default if in_default else rng.choice(others)
            art, _ = store.create(scope, NewArtifact(
                name=title, content=text, artifact_type="document", thread_id=f"thread-{k % 50}",
                tags=[f"topic-{k % 20}"],
            ))
            templates.append(art.artifact_id)
            batch_default += in_default
            k += 1
            artifacts += 1
        create_s += time.perf_counter() - t
        default_artifacts += batch_default
        t = time.perf_counter()
        while tasks := store.claim_index_jobs(BUILD_BATCH):
            prepared = store.prepare_index(tasks)
            store.commit_index(tasks, prepared)
            for task, prep in zip(tasks, prepared, strict=True):
                if prep.error is not None:
                    raise RuntimeError(f"indexing {task.row.artifact_id} failed: {prep.error}")
                chunks += len(prep.chunks)
                if task.row.namespace_id == "default":
                    default_chunks += len(prep.chunks)
        index_s += time.perf_counter() - t
    log(f"N={n_chunks}: {chunks:,} chunks / {artifacts:,} artifacts through the pipeline in "
        f"{time.perf_counter() - t0:.0f}s ({chunks / (time.perf_counter() - t0):.0f} chunks/s)")
    clone_s = 0.0
    cloned = {"chunks": 0, "artifacts": 0, "default_chunks": 0, "default_artifacts": 0, "postings": 0}
    if chunks < n_chunks:
        t = time.perf_counter()
        cloned = _clone(store, n_chunks - chunks, templates, docs, args)
        clone_s = time.perf_counter() - t
    chunks += cloned["chunks"]
    artifacts += cloned["artifacts"]
    default_chunks += cloned["default_chunks"]
    default_artifacts += cloned["default_artifacts"]
    con = store.con
    counted = con.execute("SELECT count(*) FROM chunks").fetchone()[0]  # type: ignore[index]
    assert counted == chunks, (counted, chunks)
    not_indexed = con.execute("SELECT count(*) FROM artifacts WHERE is_latest AND NOT is_indexed").fetchone()[0]  # type: ignore[index]
    assert not_indexed == 0, not_indexed
    postings = con.execute("SELECT count(*) FROM postings").fetchone()[0]  # type: ignore[index]
    if catalog is None:
        con.execute("CHECKPOINT")
    store.close()
    total_s = time.perf_counter() - t0
    return {
        "chunks": chunks, "artifacts": artifacts, "default_scope_chunks": default_chunks,
        "default_scope_artifacts": default_artifacts, "postings": postings, "seconds": total_s,
        "create_seconds": create_s, "index_seconds": index_s, "clone_seconds": clone_s,
        "pipeline_chunks": chunks - cloned["chunks"], "cloned_chunks": cloned["chunks"],
        "chunks_per_second": chunks / total_s, "artifacts_per_second": artifacts / total_s,
        "embedding": "hash:384",
    }


def relabel(data_dir: Path, spec: str, catalog: str | None = None) -> str:
    """Label the catalog as indexed by the server's model `spec` (same dimension, see the docstring), so that the
    server does not re-index it; the model id."""
    from artifact_mcp.storage.index.embeddings import model_id_for
    from artifact_mcp.storage.repositories.duckdb.database import DuckDBRepositories

    model_id = model_id_for(spec)
    db: Any
    if catalog is not None:
        from artifact_mcp.storage.repositories.postgres.database import PostgresRepositories

        db, mark = PostgresRepositories(catalog), "%s"
    else:
        db, mark = DuckDBRepositories(str(data_dir / "catalog.duckdb")), "?"
    try:
        with db.transaction():
            db.settings.set("embedding_model_id", model_id)
            db.con.execute(f"UPDATE artifacts SET embedding_model_id = {mark} WHERE embedding_model_id IS NOT NULL "
                           f"AND embedding_model_id <> {mark}", [model_id, model_id])
    finally:
        db.close()
    return model_id


def _clone(store: Any, need: int, template_of_doc: list[str], docs: list[tuple[str, str]], args: argparse.Namespace
           ) -> dict[str, int]:
    """Copies "<title> (copy c)" of the template artifacts, written in bulk until `need` more chunks exist.

    Each copy is what the pipeline would have written for it: the template's artifact row, chunk rows and job row
    (`SELECT t.* REPLACE (...)`: every column the real writes filled, with a fresh id, name, namespace, thread and
    tag), the template chunks' postings plus the copy's name terms in its first chunk (the name counts once per
    version, in chunk 0), and hash:384 vectors of "<name>\\n\\n<chunk text>", computed from the template chunks'
    un-normalised hash vectors plus the name suffix's tokens. A few copies are checked against the real
    `Indexer.prepare` + embedding at the end."""
    from artifact_mcp.storage.clock import utcnow
    from artifact_mcp.storage.ids import new_artifact_id, new_job_id
    from artifact_mcp.storage.index.lexical import hashed_counts
    from artifact_mcp.storage.index.tokenize import tokens

    con = store.con
    dim = store.db.chunks.dim
    n_docs = len(docs)
    # The templates, by document: artifact id, its chunks (seq, chunk index, n_terms), raw vectors.
    con.execute("CREATE TEMP TABLE t_artifacts AS SELECT * FROM artifacts")
    con.execute("CREATE TEMP TABLE t_chunks AS SELECT * FROM chunks")
    con.execute("CREATE TEMP TABLE t_postings AS SELECT * FROM postings")
    con.execute("CREATE TEMP TABLE t_jobs AS SELECT * FROM jobs")
    rows = con.execute(
        "SELECT c.seq, c.artifact_id, c.chunk_index, c.n_terms, c.text, a.name, c.embedding FROM t_chunks c "
        "JOIN t_artifacts a USING (artifact_id) ORDER BY c.seq").fetchall()
    k = n_docs  # the first copy's running number (the templates were docs[0:n_docs])
    chunks_of: dict[str, list[int]] = {}  # template artifact id -> positions in `rows`
    hcache: dict[str, int] = {}
    raw = np.zeros((len(rows), dim), dtype=np.float64)
    for i, (_, aid, _, _, text, name, _) in enumerate(rows):
        chunks_of.setdefault(aid, []).append(i)
        raw[i] = _hash_raw(f"{name}\n\n{text}", dim, hcache)
    stored = np.asarray([r[6] for r in rows], dtype=np.float32)
    drift = float(np.abs(_unit(raw) - stored).max())
    if drift > 1e-5:
        raise RuntimeError(f"the bench's hash vectors differ from hash:384's by {drift:.2e}: update _hash_raw")
    src_seq = np.asarray([r[0] for r in rows], dtype=np.int64)
    first = np.asarray([r[2] == 0 for r in rows])
    n_terms = np.asarray([r[3] for r in rows], dtype=np.int64)
    cols = ", ".join(f"m.c{j}" for j in range(dim))
    counts = {"chunks": 0, "artifacts": 0, "default_chunks": 0, "default_artifacts": 0}
    nprng = np.random.default_rng(k)
    base = np.datetime64(utcnow().replace(tzinfo=None), "us")
    start_k = k
    last_log = time.perf_counter()
    while counts["chunks"] < need:
        # One batch of copies: artifacts k, k+1, ... until ~args.clone_batch chunks (or the need) are reached.
        a_src, a_id, a_name, a_ns, a_thread, a_tag, a_ts, a_job = [], [], [], [], [], [], [], []
        c_pos, c_aid, c_copy = [], [], []
        batch_chunks = 0
        while batch_chunks < args.clone_batch and counts["chunks"] + batch_chunks < need:
            doc, copy = k % n_docs, k // n_docs
            src = template_of_doc[doc]
            aid = new_artifact_id()
            in_default = nprng.random() >= args.other_fraction
            ns = "default" if in_default else OTHER_NAMESPACES[int(nprng.integers(len(OTHER_NAMESPACES)))]
            a_src.append(src)
            a_id.append(aid)
            a_name.append(f"{docs[doc][0]} (copy {copy})")
            a_ns.append(ns)
            a_thread.append(f"thread-{k % 50}")
            a_tag.append(f"topic-{k % 20}")
            a_ts.append(base + np.timedelta64(k - start_k + 1, "us"))
            a_job.append(new_job_id())
            positions = chunks_of[src]
            c_pos += positions
            c_aid += [aid] * len(positions)
            c_copy += [copy] * len(positions)
            batch_chunks += len(positions)
            counts["artifacts"] += 1
            counts["default_artifacts"] += in_default
            counts["default_chunks"] += len(positions) if in_default else 0
            k += 1
        pos = np.asarray(c_pos, dtype=np.int64)
        n = len(pos)
        seqs = con.execute("SELECT nextval('chunk_seq') AS s FROM range(?)", [n]).fetchnumpy()["s"].astype(np.int64)
        # The copy's name suffix: its tokens join every chunk's embedded text, and chunk 0's lexical terms.
        suffix = {c: tokens(f" (copy {c})") for c in set(c_copy)}
        extra_vec = {c: _hash_raw(f" (copy {c})", dim, hcache) for c in suffix}
        copies = np.asarray(c_copy, dtype=np.int64)
        delta = np.stack([extra_vec[c] for c in copies.tolist()]) if n else np.zeros((0, dim))
        vectors = _unit(raw[pos] + delta)
        extra_terms = {c: hashed_counts(f" (copy {c})") for c in suffix}
        x_seq, x_term, x_tf = [], [], []
        for i in np.flatnonzero(first[pos]).tolist():
            terms, tfs, _ = extra_terms[c_copy[i]]
            x_seq += [int(seqs[i])] * len(terms)
            x_term += terms
            x_tf += tfs
        c_terms = n_terms[pos] + np.asarray([len(suffix[c]) if f else 0 for c, f in zip(c_copy, first[pos].tolist(),
                                                                                          strict=True)], dtype=np.int64)
        by_aid = dict(zip(a_id, zip(a_ns, a_thread, a_tag, strict=True), strict=True))
        am = {"src_id": np.asarray(a_src, dtype=object), "new_id": np.asarray(a_id, dtype=object),
              "name": np.asarray(a_name, dtype=object), "ns": np.asarray(a_ns, dtype=object),
              "thread": np.asarray(a_thread, dtype=object), "tag": np.asarray(a_tag, dtype=object),
              "ts": np.asarray(a_ts, dtype="datetime64[us]"), "job_id": np.asarray(a_job, dtype=object)}
        cm: dict[str, np.ndarray] = {
            "src_seq": src_seq[pos], "new_seq": seqs, "new_aid": np.asarray(c_aid, dtype=object),
            "chunk_id": np.asarray([f"{a}:{rows[p][2]}" for a, p in zip(c_aid, c_pos, strict=True)], dtype=object),
            "ns": np.asarray([by_aid[a][0] for a in c_aid], dtype=object),
            "thread": np.asarray([by_aid[a][1] for a in c_aid], dtype=object),
            "tag": np.asarray([by_aid[a][2] for a in c_aid], dtype=object),
            "first": first[pos], "n_terms": c_terms,
        }
        for j in range(dim):
            cm[f"c{j}"] = np.ascontiguousarray(vectors[:, j])
        px = {"seq": np.asarray(x_seq, dtype=np.int64), "term": np.asarray(x_term, dtype=np.int64),
              "tf": np.asarray(x_tf, dtype=np.int64)}
        con.register("am", am)  # type: ignore[arg-type]
        con.register("cm", cm)  # type: ignore[arg-type]
        con.register("px", px)  # type: ignore[arg-type]
        with store.db.transaction():
            con.execute("INSERT INTO artifacts SELECT a.* REPLACE (m.new_id AS artifact_id, "
                        "m.new_id AS root_artifact_id, m.name AS name, m.ns AS namespace_id, "
                        "m.thread AS thread_id, [m.tag] AS tags, "
                        "m.ts AS created_at, m.ts AS updated_at, m.ts AS indexed_at, "
                        # Rows are read from their card (migration 4): the copy's must carry its own fields.
                        "json_merge_patch(a.card, json_object('artifact_id', m.new_id, 'root_artifact_id', "
                        "m.new_id, 'name', m.name, 'namespace_id', m.ns, 'thread_id', m.thread, 'tags', [m.tag], "
                        "'created_at', m.ts::VARCHAR, 'updated_at', m.ts::VARCHAR, 'indexed_at', m.ts::VARCHAR)) "
                        "AS card) FROM am m JOIN t_artifacts a ON a.artifact_id = m.src_id")
            con.execute("INSERT INTO jobs SELECT j.* REPLACE (m.job_id AS job_id, m.new_id AS artifact_id, "
                        "m.ns AS namespace_id, m.ts AS created_at, m.ts AS started_at, m.ts AS ended_at, "
                        "m.ts AS next_run_at) FROM am m JOIN t_jobs j ON j.artifact_id = m.src_id")
            con.execute("INSERT INTO chunks SELECT c.* REPLACE (m.new_seq AS seq, m.chunk_id AS chunk_id, "
                        "m.new_aid AS artifact_id, m.new_aid AS root_artifact_id, m.ns AS namespace_id, "
                        "m.thread AS thread_id, [m.tag] AS tags, m.n_terms::INTEGER AS n_terms, "
                        f"[{cols}]::FLOAT[{dim}] AS embedding) FROM cm m JOIN t_chunks c ON c.seq = m.src_seq")
            con.execute("INSERT INTO postings SELECT p.term, m.new_seq, p.tf FROM cm m "
                        "JOIN t_postings p ON p.seq = m.src_seq WHERE NOT m.first")
            con.execute("INSERT INTO postings SELECT term, seq, sum(tf)::INTEGER FROM ("
                        "SELECT p.term, m.new_seq AS seq, p.tf FROM cm m JOIN t_postings p ON p.seq = m.src_seq "
                        "WHERE m.first UNION ALL SELECT term, seq, tf FROM px) GROUP BY term, seq")
        for name in ("am", "cm", "px"):
            con.unregister(name)
        counts["chunks"] += n
        if time.perf_counter() - last_log > 30:
            last_log = time.perf_counter()
            log(f"cloned {counts['chunks']:,} / {need:,} chunks ({counts['artifacts']:,} artifacts)")
    _check_copies(store, a_id[-3:] + a_id[:2])
    for t in ("t_artifacts", "t_chunks", "t_postings", "t_jobs"):
        con.execute(f"DROP TABLE {t}")
    return counts


def _check_copies(store: Any, artifact_ids: list[str]) -> None:
    """The bulk copies are what the real pipeline writes: re-chunk, re-term and re-embed a few with it."""
    from artifact_mcp.storage.clock import utcnow

    con = store.con
    for aid in artifact_ids:
        row = store.db.artifacts.get(aid, utcnow())
        prepared = store.indexer.prepare(row, row.content_text)
        vectors = store.indexer.embed([c.embed_text for c in prepared])
        got = con.execute("SELECT seq, chunk_index, n_terms, text, embedding FROM chunks WHERE artifact_id = ? "
                          "ORDER BY chunk_index", [aid]).fetchall()
        assert row.artifact_id == aid and row.name.endswith(")"), (aid, row.name)  # the copy's card, not its template's
        assert [(g[1], g[2], g[3]) for g in got] == [(c.index, c.n_terms, c.text) for c in prepared], aid
        assert float(np.abs(np.asarray([g[4] for g in got]) - vectors).max()) < 1e-5, aid
        for (seq, *_), c in zip(got, prepared, strict=True):
            stored = dict(con.execute("SELECT term, tf FROM postings WHERE seq = ?", [seq]).fetchall())
            assert stored == dict(zip(c.terms, c.tfs, strict=True)), (aid, seq)
