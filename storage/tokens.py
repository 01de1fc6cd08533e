"""API token records, and where they are kept: a JSON file beside an embedded catalog, or the PostgreSQL catalog's
`tokens` table, so every replica verifies, lists and revokes the same tokens.

Only records live here (the token itself is shown once, at creation, and stored as a hash); issuing and checking
tokens is server/auth/tokens.py's. A record store gives a snapshot to read (`load`, `get`) and an edit under a
lock that every writer (any process, any replica) takes in turn (`edit`).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, Field, TypeAdapter

from artifact_mcp.storage.access import Permission, Principal
from artifact_mcp.storage.models import Scope


def now_utc() -> datetime:
    return datetime.now(UTC)


class TokenRecord(BaseModel):
    token_id: str
    principal_id: str
    secret_hash: str = Field(description="sha256 of the secret part; the token is never stored.")
    scopes: list[str]
    permissions: list[Permission]
    default_scope: Scope | None = None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    description: str | None = None

    def active(self, now: datetime | None = None) -> bool:
        now = now or now_utc()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def principal(self) -> Principal:
        return Principal(principal_id=self.principal_id, token_id=self.token_id, scopes=tuple(self.scopes),
                         permissions=frozenset(self.permissions), default_scope=self.default_scope)


RECORDS = TypeAdapter(list[TokenRecord])


class TokenRecords(Protocol):
    reads_block: bool
    """Whether `get` may wait on more than a stat of an unchanged file (a database round trip)."""

    def load(self) -> dict[str, TokenRecord]:
        """Every record by token id, as stored now."""
    def get(self, token_id: str) -> TokenRecord | None: ...
    def edit(self) -> AbstractContextManager[dict[str, TokenRecord]]:
        """The records to change in place; stored when the block ends, with no other writer in between."""
    def close(self) -> None: ...
    def shared_secret(self, name: str) -> bytes | None:
        """A random secret stored beside the records for every process to share; None for a local file."""


class FileTokenRecords:
    """One JSON file, replaced atomically under an flock. Re-read when it changes (mtime and size), so a revoke
    made by `artifact-mcp token revoke` takes effect at once in running servers."""

    reads_block = False  # a stat, and a small file read when it changed

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._records: dict[str, TokenRecord] = {}

    def _load(self) -> dict[str, TokenRecord]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._records = None, {}
            return self._records
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            records = RECORDS.validate_json(self.path.read_bytes() or b"[]")
            self._records, self._stamp = {r.token_id: r for r in records}, stamp
        return self._records

    def load(self) -> dict[str, TokenRecord]:
        with self._lock:
            return dict(self._load())

    def get(self, token_id: str) -> TokenRecord | None:
        with self._lock:
            return self._load().get(token_id)

    @contextmanager
    def edit(self) -> Iterator[dict[str, TokenRecord]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock, self._lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._stamp = None
            records = dict(self._load())
            yield records
            data = RECORDS.dump_json(list(records.values()), indent=2)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._stamp = None

    def close(self) -> None:
        pass

    def shared_secret(self, name: str) -> bytes | None:
        return None  # one machine: the console keeps its key in the data directory


def token_records(catalog_path: str, tokens_path: Path) -> TokenRecords:
    """Where this deployment keeps its tokens: the PostgreSQL catalog's table, else the file."""
    if catalog_path.startswith(("postgresql://", "postgres://")):
        from artifact_mcp.storage.repositories.postgres.tokens import PostgresTokenRecords

        return PostgresTokenRecords(catalog_path)
    return FileTokenRecords(tokens_path)
