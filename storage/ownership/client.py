"""Several processes, one store: `StoreClient`, the async facade the server uses.

DuckDB lets one process write a database file. Every `artifact-mcp serve` on the same data directory
builds a `StoreClient`: the first to take `store.lock` opens the store and serves it on a local Unix
socket; the others forward every call over that socket (storage/ownership/rpc.py). When the owner exits, its
lock is released and its socket closes; the forwarders race for the lock, one becomes the new owner and the
rest reconnect to it. Calls made meanwhile wait for the new owner instead of failing.

A server opens its client in the background (`open_in_background`): entering it returns at once, so the server
answers `initialize` before the store (and DuckDB, the model behind it) is loaded. Every call waits for
the open; if it failed, every call raises `Unavailable` saying why, instead of waiting. The owner warms the
embedding model as soon as the store is open (storage/ownership/workers.py); `wait_warm` lets a query wait for it.

The client's store methods are derived from the operation registry (storage/ownership/registry.py): one async
method per public `@operation` of `ArtifactStore`, same name, same parameters (less a pre-chosen id the client
fills in), the operation's result type. Only what is more than forwarding one call is written here.
"""

from __future__ import annotations

import fcntl
import inspect
import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, suppress
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from artifact_mcp.storage.archive import ArchivedVersion, RestoreOutcome
from artifact_mcp.storage.blobs import BlobStore
from artifact_mcp.storage.config import StoreConfig
from artifact_mcp.storage.errors import ERROR_KINDS, StoreError, Unavailable
from artifact_mcp.storage.ids import new_artifact_id
from artifact_mcp.storage.models import Artifact, ChangeEvent, FilePatch, NewFileArtifact, Scope, UpdateResult
from artifact_mcp.storage.ownership import rpc
from artifact_mcp.storage.ownership.registry import OPERATIONS, Operation
from artifact_mcp.storage.ownership.waiting import Waiting
from artifact_mcp.storage.ownership.workers import OwnerWorkers
from artifact_mcp.storage.store import ArtifactStore, open_store

__all__ = ["StoreClient", "StoreConfig", "open_store"]

log = logging.getLogger(__name__)

Listener = Callable[[ChangeEvent], Awaitable[None]]


class StoreClient(Waiting):
    """The async facade the server uses: same methods in every process, whoever owns the store."""

    def __init__(self, cfg: StoreConfig, *, open_in_background: bool = False) -> None:
        self.cfg = cfg
        self.role: str = "starting"
        self._background = open_in_background
        self._open_error: str | None = None  # why the store could not be opened (every call raises it)
        self._open_cause: BaseException | None = None
        self._warm_seen = False  # the owner's embedding model was seen loaded (reset when the owner changes)
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
        self._workers: OwnerWorkers | None = None
        self._blobs: BlobStore | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def __aenter__(self) -> StoreClient:
        """Open the store: own it, or forward to the process that does. With `open_in_background`, return at once
        and open in this client's task group (calls wait for it); else return once open, or raise why not."""
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        if self._background:
            self._tg.start_soon(self._open)
            return self
        try:
            await self._open()
            await self.opened()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def opened(self) -> None:
        """Wait until the store is open in this process or its owner is reachable (at most the takeover timeout);
        raise `Unavailable` saying why when it could not be opened."""
        with anyio.fail_after(self.cfg.takeover_timeout_seconds):
            await self._ready.wait()
        if self._open_error is not None:
            raise Unavailable(self._open_error) from self._open_cause

    async def _open(self) -> None:
        """Become the owner or a forwarder. A failure is kept (every call raises it) and logged once."""
        try:
            if not self.cfg.shared:
                await self._become_owner(serve_socket=False)
            else:
                with anyio.fail_after(self.cfg.takeover_timeout_seconds):
                    await self._establish()
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                why = (f"neither took the lock nor reached the owning process within "
                       f"{self.cfg.takeover_timeout_seconds:g} s")
            else:
                why = f"{type(exc).__name__}: {exc}"
            self._open_error = (f"the store {self.cfg.catalog_path} could not be opened ({why}); fix the cause and "
                                "restart the server")
            self._open_cause = exc
            log.error("%s", self._open_error, exc_info=exc)
            if self.store is None and self._lock_fd is not None:
                os.close(self._lock_fd)  # let another process try
                self._lock_fd = None
            self._ready.set()

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
            self._warm_seen = False
            assert self._tg is not None
            self._tg.start_soon(self._forwarder_reader, stream)
            self._ready.set()
            log.info("store at %s is owned by another process; forwarding to it", self.cfg.catalog_path)
            return

    async def _become_owner(self, *, serve_socket: bool) -> None:
        # Shielded: a shutdown that comes while the store opens waits for it (seconds), so that __aexit__ closes it.
        with anyio.CancelScope(shield=True):
            self.store = await anyio.to_thread.run_sync(open_store, self.cfg)
        self.role = "owner"
        self._warm_seen = False
        assert self._tg is not None
        if serve_socket:
            with suppress(FileNotFoundError):
                os.unlink(self.cfg.socket_path)
            listener = await anyio.create_unix_listener(self.cfg.socket_path)
            self._tg.start_soon(listener.serve, self._serve_peer)
        if self.cfg.background_work:
            self._workers = OwnerWorkers(self.store, self.cfg, self._emit, deliver=self._deliver)
            self._workers.start(self._tg)
        else:
            self.store.serve_cold()
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
                        header, body = await rpc.read_frame(reader)
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
            m = rpc.method(method)
            params = m.params.model_validate_json(body)
            result = await self._invoke_local(method, dict(params))
            out = {"id": rid}, m.result_adapter.dump_json(result)
        except StoreError as exc:
            out = {"id": rid, "error": {"kind": exc.kind, "message": exc.message}}, b""
        except Exception:
            log.exception("store call %s failed", method)
            out = {"id": rid, "error": {"kind": "internal", "message": f"internal error in {method}"}}, b""
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await rpc.write_frame(stream, lock, *out)

    async def _invoke_local(self, method: str, kwargs: dict[str, Any]) -> Any:
        assert self.store is not None
        result = await anyio.to_thread.run_sync(partial(getattr(self.store, method), **kwargs))
        if isinstance(result, tuple):
            result, event = result
            await self._emit(event)
        op = OPERATIONS[method]
        if op.enqueues and self._workers is not None:
            self._workers.indexer.wake()
        if op.generates and self._workers is not None:
            self._workers.generator.wake()
        return result

    async def _emit(self, event: ChangeEvent) -> None:
        """A change made here: to this process's listeners and forwarders, and to the other replicas of a shared
        catalog (which deliver it to theirs, `_deliver`)."""
        await self._deliver(event)
        if self.store is not None and self.store.relays_events:
            try:
                await anyio.to_thread.run_sync(self.store.publish_event, event)
            except Exception:
                log.exception("relaying a change to the other replicas failed")

    async def _deliver(self, event: ChangeEvent) -> None:
        for listener in list(self._listeners):
            try:
                await listener(event)
            except Exception:
                log.exception("change listener failed")
        if self._peers:
            body = rpc.EVENT.dump_json(event)
            for stream, lock in list(self._peers.values()):
                with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await rpc.write_frame(stream, lock, {"event": "change"}, body)

    # --- forwarder side ----------------------------------------------------------------------

    async def _forwarder_reader(self, stream: anyio.abc.ByteStream) -> None:
        reader = BufferedByteReceiveStream(stream)
        try:
            while True:
                header, body = await rpc.read_frame(reader)
                if "event" in header:
                    event = rpc.EVENT.validate_json(body)
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
        await self._open()

    async def _call(self, method: str, **kwargs: Any) -> Any:
        for _attempt in range(5):
            await self.opened()
            if self.role == "owner":
                return await self._invoke_local(method, kwargs)
            conn = self._conn
            if conn is None:
                await anyio.sleep(0.01)
                continue
            rid = next(self._ids)
            done, slot = anyio.Event(), []
            self._pending[rid] = (done, slot)
            m = rpc.method(method)
            body = m.params(**kwargs).model_dump_json().encode()
            try:
                await rpc.write_frame(conn, self._send_lock, {"id": rid, "method": method}, body)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                self._pending.pop(rid, None)
                await anyio.sleep(0.01)
                continue
            await done.wait()
            reply = slot[0]
            if reply is None:
                if m.op.retryable:
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
            return m.result_adapter.validate_json(payload)
        raise Unavailable("could not reach the store owner; try again in a moment")

    # --- the API: the registry's operations (installed below), and what is more than one call -------------

    if TYPE_CHECKING:
        # The derived methods (`_install_operations`): `StoreClient.get` etc., typed at run time by their
        # signatures; a static checker sees an awaitable.
        def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]: ...

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
            self._blobs = BlobStore(self.cfg.blob_url, max_bytes=self.cfg.max_upload_bytes, fsync=self.cfg.blob_fsync,
                                    shared=self.cfg.is_postgres)
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

    async def restore_from_stream(self, version: ArchivedVersion, fileobj: BinaryIO | None) -> RestoreOutcome:
        """Restore an archived version with its ids; a file version's bytes are read from `fileobj` (their hash
        must be the archive's)."""
        if fileobj is None:
            return await self._call("restore_version", version=version, staged=None)
        return await self._with_staged(fileobj, "restore_version", version=version)



def _forwarder(op: Operation) -> Callable[..., Awaitable[Any]]:
    """`StoreClient.<op.name>`: the store method's parameters (less `op.fresh_id`, which gets a new artifact id
    per call, so a retry after a takeover repeats it), forwarded to wherever the store is."""
    sig = inspect.signature(op.fn)
    params = [p for name, p in sig.parameters.items() if name != op.fresh_id]
    client_sig = sig.replace(parameters=params, return_annotation=rpc.method(op.name).result)
    name, fresh_id = op.name, op.fresh_id

    async def forward(self: StoreClient, *args: Any, **kwargs: Any) -> Any:
        bound = client_sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        call = dict(bound.arguments)
        del call["self"]
        if fresh_id is not None:
            call[fresh_id] = new_artifact_id()
        return await self._call(name, **call)

    forward.__name__ = name
    forward.__qualname__ = f"StoreClient.{name}"
    forward.__doc__ = op.fn.__doc__
    forward.__signature__ = client_sig  # type: ignore[attr-defined]
    return forward


def _install_operations() -> None:
    for op in OPERATIONS.values():
        if not op.public:
            continue
        if op.name in StoreClient.__dict__:
            raise TypeError(f"StoreClient.{op.name} is written by hand and derived from the registry")
        setattr(StoreClient, op.name, _forwarder(op))


_install_operations()
