"""Several processes, one store.

DuckDB lets one process write a database file. Every `artifact-mcp serve` on the same data directory
builds a `StoreClient`: the first to take `store.lock` opens the store and serves it on a local Unix
socket; the others forward every call over that socket. When the owner exits, its lock is released
and its socket closes; the forwarders race for the lock, one becomes the new owner and the rest
reconnect to it. Calls made meanwhile wait for the new owner instead of failing.

Frames on the socket: one JSON header line, then `len` bytes of JSON body (pydantic-encoded, so
bytes travel as base64). Owner -> forwarder frames are either a response (`id`) or a change event.
"""

from __future__ import annotations

import fcntl
import inspect
import itertools
import json
import logging
import os
import typing
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from datetime import datetime
from functools import partial
from typing import Any, BinaryIO

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream
from pydantic import BaseModel, ConfigDict, TypeAdapter, create_model

from artifact_mcp.storage.blobs import BlobStore
from artifact_mcp.storage.catalog import Catalog, utcnow
from artifact_mcp.storage.config import StoreConfig
from artifact_mcp.storage.errors import ERROR_KINDS, StoreError, Unavailable
from artifact_mcp.storage.generate.models import Draft, GenerateRequest, GenerateResult, Material
from artifact_mcp.storage.jobs import JobRunner
from artifact_mcp.storage.links import DownloadLink, DownloadTarget
from artifact_mcp.storage.models import (
    Artifact,
    ArtifactPage,
    ArtifactPatch,
    ChangeEvent,
    ContentBody,
    DeleteResult,
    FilePatch,
    JobList,
    ListQuery,
    NewArtifact,
    NewFileArtifact,
    PromoteRequest,
    PromoteResult,
    QueryRequest,
    QueryResult,
    Scope,
    UpdateResult,
)
from artifact_mcp.storage.service import DEFAULT_MAX_CHARS, ArtifactStore, new_artifact_id

log = logging.getLogger(__name__)

Listener = Callable[[ChangeEvent], Awaitable[None]]
_MAX_HEADER = 64 * 1024
_RETURNS: dict[str, Any] = {
    "create": Artifact, "get": Artifact, "list": ArtifactPage, "versions": list[Artifact],
    "update": UpdateResult, "delete": DeleteResult, "read_content": ContentBody, "locate": Scope | None,
    "query": QueryResult, "promote": PromoteResult, "list_jobs": JobList,
    "create_from_blob": Artifact, "update_from_blob": UpdateResult, "download_link": DownloadLink,
    "resolve_download": DownloadTarget, "download_target": DownloadTarget,
    "generate": GenerateResult, "find_generation": GenerateResult | None, "generation_material": Material,
}
# Safe to send again after the owner vanished mid-call (create is, thanks to its pre-chosen id; promote is
# idempotent).
_RETRYABLE = {"create", "get", "list", "versions", "read_content", "locate", "query", "promote", "list_jobs",
              "create_from_blob", "download_link", "resolve_download", "download_target",
              # generate: a retry carries the same pre-chosen artifact id, so it returns the first acceptance
              "generate", "find_generation", "generation_material"}
# Writes after which the index job runner has work.
_ENQUEUES = {"create", "update", "delete", "create_from_blob", "update_from_blob"}


def _params_model(name: str) -> type[BaseModel]:
    fn = getattr(ArtifactStore, name)
    hints = typing.get_type_hints(fn)
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(fn).parameters.items():
        if pname == "self":
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (hints[pname], default)
    return create_model(f"{name}_params", __config__=ConfigDict(ser_json_bytes="base64",
                                                                 val_json_bytes="base64"), **fields)


_PARAMS = {name: _params_model(name) for name in _RETURNS}
_RESULTS = {name: TypeAdapter(tp) for name, tp in _RETURNS.items()}
_EVENT = TypeAdapter(ChangeEvent)


def open_store(cfg: StoreConfig) -> ArtifactStore:
    catalog = Catalog(cfg.catalog_path, memory_limit=cfg.memory_limit, threads=cfg.threads)
    blobs = BlobStore(cfg.blob_url, max_bytes=cfg.max_upload_bytes, fsync=cfg.blob_fsync)
    return ArtifactStore(catalog, blobs, max_content_bytes=cfg.max_upload_bytes, index=cfg.index)


async def _write_frame(stream: anyio.abc.ByteSendStream, lock: anyio.Lock, header: dict[str, Any],
                       body: bytes = b"") -> None:
    header["len"] = len(body)
    async with lock:
        await stream.send(json.dumps(header).encode() + b"\n" + body)


async def _read_frame(reader: BufferedByteReceiveStream) -> tuple[dict[str, Any], bytes]:
    header = json.loads(await reader.receive_until(b"\n", _MAX_HEADER))
    body = await reader.receive_exactly(header["len"]) if header["len"] else b""
    return header, body


class StoreClient:
    """The async facade the server uses: same methods in every process, whoever owns the store."""

    def __init__(self, cfg: StoreConfig) -> None:
        self.cfg = cfg
        self.role: str = "starting"
        self.store: ArtifactStore | None = None
        self._listeners: list[Listener] = []
        self._stack = AsyncExitStack()
        self._tg: anyio.abc.TaskGroup | None = None
        self._ready = anyio.Event()
        self._lock_fd: int | None = None
        # owner side
        self._peers: dict[int, tuple[anyio.abc.ByteStream, anyio.Lock]] = {}
        self._owner_scope: anyio.CancelScope | None = None
        # forwarder side
        self._conn: anyio.abc.ByteStream | None = None
        self._send_lock = anyio.Lock()
        self._pending: dict[int, tuple[anyio.Event, list[Any]]] = {}
        self._ids = itertools.count(1)
        self._closing = False
        self._runner: JobRunner | None = None
        self._generator: JobRunner | None = None
        self._blobs: BlobStore | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def __aenter__(self) -> StoreClient:
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        if not self.cfg.shared:
            await self._become_owner(serve_socket=False)
        else:
            with anyio.fail_after(self.cfg.takeover_timeout_seconds):
                await self._establish()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing = True
        try:
            if self.role == "owner":
                if self.cfg.shared:
                    with suppress(FileNotFoundError):
                        os.unlink(self.cfg.socket_path)
                # Closing the peers' streams is what tells the forwarders to take over.
                with anyio.CancelScope(shield=True):
                    for stream, _ in list(self._peers.values()):
                        await stream.aclose()
                self._peers.clear()
            assert self._tg is not None
            self._tg.cancel_scope.cancel()
            await self._stack.aclose()
        finally:
            # Shielded: when the server is being cancelled (SIGTERM), an unshielded await would raise at once,
            # leaving DuckDB open and the lock held, so no other process could take the store over.
            with anyio.CancelScope(shield=True):
                if self.store is not None:
                    await anyio.to_thread.run_sync(self.store.close)
                    self.store = None
                if self._conn is not None:
                    await self._conn.aclose()
                    self._conn = None
            if self._lock_fd is not None:
                # Only after DuckDB is closed, so the next owner can open the file.
                os.close(self._lock_fd)
                self._lock_fd = None

    def _try_lock(self) -> bool:
        os.makedirs(os.path.dirname(self.cfg.lock_path), exist_ok=True)
        fd = os.open(self.cfg.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    async def _establish(self) -> None:
        delay = 0.01
        while not self._closing:
            if self._try_lock():
                await self._become_owner(serve_socket=True)
                return
            try:
                stream = await anyio.connect_unix(self.cfg.socket_path)
            except OSError:
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.2)
                continue
            self._conn = stream
            self.role = "forwarder"
            assert self._tg is not None
            self._tg.start_soon(self._forwarder_reader, stream)
            self._ready.set()
            log.info("store at %s is owned by another process; forwarding to it", self.cfg.catalog_path)
            return

    async def _become_owner(self, *, serve_socket: bool) -> None:
        self.store = await anyio.to_thread.run_sync(open_store, self.cfg)
        self.role = "owner"
        assert self._tg is not None
        if serve_socket:
            with suppress(FileNotFoundError):
                os.unlink(self.cfg.socket_path)
            listener = await anyio.create_unix_listener(self.cfg.socket_path)
            self._tg.start_soon(listener.serve, self._serve_peer)
        self._tg.start_soon(self._housekeeping)
        self._runner = JobRunner(self._index_batch)
        self._tg.start_soon(self._runner.run)
        self._generator = JobRunner(self._generate_batch)
        self._tg.start_soon(self._generator.run)
        self._tg.start_soon(partial(anyio.to_thread.run_sync, self.store.warm_up, abandon_on_cancel=True))
        self._ready.set()
        log.info("owning store %s (blobs %s)", self.cfg.catalog_path, self.cfg.blob_url)

    # --- owner side --------------------------------------------------------------------------

    async def _serve_peer(self, stream: anyio.abc.ByteStream) -> None:
        key = id(stream)
        lock = anyio.Lock()
        self._peers[key] = (stream, lock)
        reader = BufferedByteReceiveStream(stream)
        try:
            async with anyio.create_task_group() as tg:
                while True:
                    try:
                        header, body = await _read_frame(reader)
                    except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError,
                            anyio.ClosedResourceError):
                        break
                    tg.start_soon(self._answer, stream, lock, header, body)
        finally:
            self._peers.pop(key, None)

    async def _answer(self, stream: anyio.abc.ByteStream, lock: anyio.Lock, header: dict[str, Any],
                      body: bytes) -> None:
        rid, method = header["id"], header["method"]
        try:
            params = _PARAMS[method].model_validate_json(body)
            result = await self._invoke_local(method, dict(params))
            out = {"id": rid}, _RESULTS[method].dump_json(result)
        except StoreError as exc:
            out = {"id": rid, "error": {"kind": exc.kind, "message": exc.message}}, b""
        except Exception:
            log.exception("store call %s failed", method)
            out = {"id": rid, "error": {"kind": "internal", "message": f"internal error in {method}"}}, b""
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await _write_frame(stream, lock, *out)

    async def _invoke_local(self, method: str, kwargs: dict[str, Any]) -> Any:
        assert self.store is not None
        result = await anyio.to_thread.run_sync(partial(getattr(self.store, method), **kwargs))
        if isinstance(result, tuple):
            result, event = result
            await self._emit(event)
        if method in _ENQUEUES and self._runner is not None:
            self._runner.wake()
        if method == "generate" and self._generator is not None:
            self._generator.wake()
        return result

    async def _generate_batch(self) -> float | None:
        """Run due generation jobs (one at a time: rendering is CPU-bound); how long until the next is due."""
        assert self.store is not None
        store = self.store
        tasks = await anyio.to_thread.run_sync(store.claim_generation_jobs, 1)
        if not tasks:
            due = await anyio.to_thread.run_sync(store.next_generation_due)
            if due is None:
                return None
            return max(0.01, (due - utcnow()).total_seconds())
        for task in tasks:
            # Abandoned on shutdown like index work: the job stays `running` and the next owner requeues it.
            outcome = await anyio.to_thread.run_sync(store.run_generation, task, abandon_on_cancel=True)
            for event in await anyio.to_thread.run_sync(store.commit_generation, task, outcome):
                await self._emit(event)
        if self._runner is not None:
            self._runner.wake()  # a completed document has an index job now
        return 0

    async def _index_batch(self) -> float | None:
        """Claim, prepare and commit one batch of index jobs; how long until the next is due (None: none queued)."""
        assert self.store is not None
        store = self.store
        tasks = await anyio.to_thread.run_sync(store.claim_index_jobs, self.cfg.index.job_batch)
        if not tasks:
            due = await anyio.to_thread.run_sync(store.next_job_due)
            if due is None:
                return None
            return max(0.01, (due - utcnow()).total_seconds())
        # Pure computation (extraction, chunking, embedding): abandoned, not awaited, on shutdown. The jobs stay
        # `running` in the catalog and the next owner requeues them.
        prepared = await anyio.to_thread.run_sync(store.prepare_index, tasks, abandon_on_cancel=True)
        events = await anyio.to_thread.run_sync(store.commit_index, tasks, prepared)
        for event in events:
            await self._emit(event)
        return 0

    async def _emit(self, event: ChangeEvent) -> None:
        for listener in list(self._listeners):
            try:
                await listener(event)
            except Exception:
                log.exception("change listener failed")
        if self._peers:
            body = _EVENT.dump_json(event)
            for stream, lock in list(self._peers.values()):
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await _write_frame(stream, lock, {"event": "change"}, body)

    async def _housekeeping(self) -> None:
        assert self.store is not None
        store = self.store
        await anyio.to_thread.run_sync(store.collect_garbage)
        since_gc = 0.0
        while True:
            await anyio.sleep(self.cfg.sweep_interval_seconds)
            try:
                for event in await anyio.to_thread.run_sync(store.sweep_expired):
                    await self._emit(event)
                since_gc += self.cfg.sweep_interval_seconds
                if since_gc >= self.cfg.gc_interval_seconds:
                    since_gc = 0.0
                    await anyio.to_thread.run_sync(store.collect_garbage)
            except Exception:
                log.exception("housekeeping failed; will retry")

    # --- forwarder side ----------------------------------------------------------------------

    async def _forwarder_reader(self, stream: anyio.abc.ByteStream) -> None:
        reader = BufferedByteReceiveStream(stream)
        try:
            while True:
                header, body = await _read_frame(reader)
                if "event" in header:
                    event = _EVENT.validate_json(body)
                    for listener in list(self._listeners):
                        try:
                            await listener(event)
                        except Exception:
                            log.exception("change listener failed")
                    continue
                waiter = self._pending.pop(header["id"], None)
                if waiter is not None:
                    waiter[1].append((header, body))
                    waiter[0].set()
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        if self._closing:
            return
        log.info("store owner went away; taking over or reconnecting")
        self._conn = None
        self._ready = anyio.Event()
        for event, slot in self._pending.values():
            slot.append(None)
            event.set()
        self._pending.clear()
        with anyio.fail_after(self.cfg.takeover_timeout_seconds):
            await self._establish()

    async def _call(self, method: str, **kwargs: Any) -> Any:
        for _attempt in range(5):
            with anyio.fail_after(self.cfg.takeover_timeout_seconds):
                await self._ready.wait()
            if self.role == "owner":
                return await self._invoke_local(method, kwargs)
            conn = self._conn
            if conn is None:
                await anyio.sleep(0.01)
                continue
            rid = next(self._ids)
            done, slot = anyio.Event(), []
            self._pending[rid] = (done, slot)
            body = _PARAMS[method](**kwargs).model_dump_json().encode()
            try:
                await _write_frame(conn, self._send_lock, {"id": rid, "method": method}, body)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                self._pending.pop(rid, None)
                await anyio.sleep(0.01)
                continue
            await done.wait()
            reply = slot[0]
            if reply is None:
                if method in _RETRYABLE:
                    continue
                raise Unavailable(
                    f"the process owning the store exited during {method}; its outcome is unknown. "
                    "Check with get_artifact/list_artifact_versions before retrying"
                )
            header, payload = reply
            if "error" in header:
                err = header["error"]
                cls = ERROR_KINDS.get(err["kind"])
                if cls is None:
                    raise RuntimeError(err["message"])
                raise cls(err["message"])
            return _RESULTS[method].validate_json(payload)
        raise Unavailable("could not reach the store owner; try again in a moment")

    # --- the API -----------------------------------------------------------------------------

    async def create(self, scope: Scope, new: NewArtifact) -> Artifact:
        return await self._call("create", scope=scope, new=new, artifact_id=new_artifact_id())

    async def get(self, scope: Scope, artifact_id: str, include_expired: bool = False,
                  max_chars: int = DEFAULT_MAX_CHARS) -> Artifact:
        return await self._call("get", scope=scope, artifact_id=artifact_id, include_expired=include_expired,
                                max_chars=max_chars)

    async def list(self, scope: Scope, query: ListQuery) -> ArtifactPage:
        return await self._call("list", scope=scope, query=query)

    async def versions(self, scope: Scope, artifact_id: str) -> list[Artifact]:
        return await self._call("versions", scope=scope, artifact_id=artifact_id)

    async def update(self, scope: Scope, artifact_id: str, patch: ArtifactPatch) -> UpdateResult:
        return await self._call("update", scope=scope, artifact_id=artifact_id, patch=patch)

    async def delete(self, scope: Scope, artifact_id: str, all_versions: bool = True) -> DeleteResult:
        return await self._call("delete", scope=scope, artifact_id=artifact_id, all_versions=all_versions)

    async def read_content(self, scope: Scope, artifact_id: str) -> ContentBody:
        return await self._call("read_content", scope=scope, artifact_id=artifact_id)

    async def locate(self, artifact_id: str) -> Scope | None:
        return await self._call("locate", artifact_id=artifact_id)

    async def query(self, scope: Scope, req: QueryRequest) -> QueryResult:
        return await self._call("query", scope=scope, req=req)

    async def promote(self, scope: Scope, artifact_id: str, req: PromoteRequest) -> PromoteResult:
        return await self._call("promote", scope=scope, artifact_id=artifact_id, req=req)

    async def list_jobs(self, scope: Scope, artifact_id: str) -> JobList:
        return await self._call("list_jobs", scope=scope, artifact_id=artifact_id)

    async def generate(self, scope: Scope, principal_id: str, req: GenerateRequest, draft: Draft | None = None,
                       created_by: str | None = None) -> GenerateResult:
        return await self._call("generate", scope=scope, principal_id=principal_id, req=req,
                                artifact_id=new_artifact_id(), draft=draft, created_by=created_by)

    async def find_generation(self, scope: Scope, principal_id: str, req: GenerateRequest) -> GenerateResult | None:
        return await self._call("find_generation", scope=scope, principal_id=principal_id, req=req)

    async def generation_material(self, scope: Scope, req: GenerateRequest) -> Material:
        return await self._call("generation_material", scope=scope, req=req)

    async def wait_generated(self, scope: Scope, artifact_id: str, timeout: float,
                             on_progress: Callable[[str, float], Awaitable[None]] | None = None) -> Artifact:
        """Poll until the generated document is `completed` or `failed` (or `timeout`); report each new state."""
        def state_of(art: Artifact) -> tuple[str, float, bool]:
            done = art.status in ("completed", "failed")
            return art.status, 1.0 if done else 0.5, done

        return await self._poll(scope, artifact_id, timeout, state_of, on_progress)

    # Large files: the bytes go straight to the blob store (fsspec is shared by every process of the store), in
    # constant memory; only their key, hash and size travel to the owner, which moves them into place and commits
    # the row. Reading `fileobj` (any binary file object: an upload's spooled file, an open file) blocks, so it runs
    # on a worker thread.

    @property
    def blobs(self) -> BlobStore:
        """This process's handle on the blob store (the owner's own when this process owns the store)."""
        if self.store is not None:
            return self.store.blobs
        if self._blobs is None:
            self._blobs = BlobStore(self.cfg.blob_url, max_bytes=self.cfg.max_upload_bytes, fsync=self.cfg.blob_fsync)
        return self._blobs

    async def _with_staged(self, fileobj: BinaryIO, method: str, **kwargs: Any) -> Any:
        blobs = self.blobs
        staged = await anyio.to_thread.run_sync(blobs.stage_stream, fileobj)
        try:
            return await self._call(method, staged=staged, **kwargs)
        except BaseException:
            # Normally the owner has already moved or dropped it; this covers a call that never reached it.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(blobs.discard, staged)
            raise

    async def create_from_stream(self, scope: Scope, new: NewFileArtifact, fileobj: BinaryIO) -> Artifact:
        """Create an artifact from a file's bytes read from `fileobj` in chunks (never whole in memory). The size
        limit is enforced while reading; mime type from `new.mime_type`, else sniffed from the first bytes and the
        file name; text-like files get `content_text` from their first MAX_STREAM_TEXT_BYTES (storage/content.py)."""
        return await self._with_staged(fileobj, "create_from_blob", scope=scope, new=new,
                                       artifact_id=new_artifact_id())

    async def update_from_stream(self, scope: Scope, artifact_id: str, patch: FilePatch,
                                 fileobj: BinaryIO) -> UpdateResult:
        """A new version of `artifact_id` from a file's bytes read from `fileobj` in chunks, with `patch`'s field
        changes (`expected_version` guards against lost updates)."""
        return await self._with_staged(fileobj, "update_from_blob", scope=scope, artifact_id=artifact_id, patch=patch)

    async def download_link(self, scope: Scope, artifact_id: str, expires_in: int, token_id: str | None,
                            issued_at: datetime | None = None) -> DownloadLink:
        return await self._call("download_link", scope=scope, artifact_id=artifact_id, expires_in=expires_in,
                                token_id=token_id, issued_at=issued_at)

    async def resolve_download(self, token: str) -> DownloadTarget:
        return await self._call("resolve_download", token=token)

    async def download_target(self, scope: Scope, artifact_id: str) -> DownloadTarget:
        return await self._call("download_target", scope=scope, artifact_id=artifact_id)

    async def wait_indexed(self, scope: Scope, artifact_id: str, timeout: float,
                           on_progress: Callable[[str, float], Awaitable[None]] | None = None) -> Artifact:
        """Poll until the version is searchable (or indexing gave up, or `timeout`); report each new state."""
        def state_of(art: Artifact) -> tuple[str, float, bool]:
            state = "indexed" if art.is_indexed else art.status
            return state, {"pending": 0.1, "processing": 0.5}.get(state, 1.0), art.is_indexed or art.status == "failed"

        return await self._poll(scope, artifact_id, timeout, state_of, on_progress)

    async def _poll(self, scope: Scope, artifact_id: str, timeout: float,
                    state_of: Callable[[Artifact], tuple[str, float, bool]],
                    on_progress: Callable[[str, float], Awaitable[None]] | None) -> Artifact:
        """Read the artifact until `state_of` says done (or `timeout`), reporting each new (state, fraction)."""
        last = None
        with anyio.move_on_after(timeout):
            while True:
                art = await self.get(scope, artifact_id, include_expired=True, max_chars=0)
                state, fraction, done = state_of(art)
                if state != last and on_progress is not None:
                    await on_progress(state, fraction)
                last = state
                if done:
                    return art
                await anyio.sleep(0.05)
        return await self.get(scope, artifact_id, include_expired=True, max_chars=0)
