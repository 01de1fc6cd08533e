"""API tokens, kept in a JSON file as SHA-256 hashes (the token itself is shown once, at creation).

A token reads `amcp_<token_id>_<secret>`: the id finds the record without scanning, the 256-bit secret
makes a salted slow hash unnecessary. Every process re-reads the file when it changes, so a revoke
made by `artifact-mcp token revoke` takes effect at once in running servers.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field, TypeAdapter

from artifact_mcp.storage.access import Permission, Principal, ScopeGrant
from artifact_mcp.storage.errors import InvalidInput, NotFound
from artifact_mcp.storage.models import Scope

PREFIX = "amcp_"


def _now() -> datetime:
    return datetime.now(UTC)


def _hash(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


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
        now = now or _now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def principal(self) -> Principal:
        return Principal(principal_id=self.principal_id, token_id=self.token_id, scopes=tuple(self.scopes),
                         permissions=frozenset(self.permissions), default_scope=self.default_scope)


_RECORDS = TypeAdapter(list[TokenRecord])


class TokenFile:
    """The token table: one JSON file, replaced atomically under an flock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._records: dict[str, TokenRecord] = {}

    # --- reading -------------------------------------------------------------------------------

    def _load(self) -> dict[str, TokenRecord]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._records = None, {}
            return self._records
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            records = _RECORDS.validate_json(self.path.read_bytes() or b"[]")
            self._records, self._stamp = {r.token_id: r for r in records}, stamp
        return self._records

    def records(self) -> list[TokenRecord]:
        with self._lock:
            return sorted(self._load().values(), key=lambda r: r.created_at)

    def get(self, token_id: str) -> TokenRecord | None:
        with self._lock:
            return self._load().get(token_id)

    def verify(self, token: str) -> TokenRecord | None:
        """The active record this token belongs to, or None (unknown, wrong secret, revoked, expired)."""
        if not token.startswith(PREFIX):
            return None
        token_id, sep, secret = token[len(PREFIX):].partition("_")
        if not sep or not secret:
            return None
        record = self.get(token_id)
        if record is None or not hmac.compare_digest(record.secret_hash, _hash(secret)):
            return None
        return record if record.active() else None

    def is_active(self, token_id: str) -> bool:
        record = self.get(token_id)
        return record is not None and record.active()

    def has_tokens(self) -> bool:
        return any(r.active() for r in self.records())

    # --- writing -------------------------------------------------------------------------------

    @contextmanager
    def _editing(self) -> Iterator[dict[str, TokenRecord]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock, self._lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._stamp = None
            records = dict(self._load())
            yield records
            data = _RECORDS.dump_json(list(records.values()), indent=2)
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

    def create(self, principal_id: str, scopes: list[str], permissions: list[Permission], *,
               default_scope: Scope | None = None, expires_in_seconds: int | None = None,
               description: str | None = None) -> tuple[str, TokenRecord]:
        """A new token for `principal_id`; returns (token, record). The token is not kept anywhere."""
        if not principal_id.strip():
            raise InvalidInput("principal id must not be empty")
        if not scopes:
            raise InvalidInput("give at least one scope, e.g. --scope 'acme/*/*'")
        if not permissions:
            raise InvalidInput("give at least one permission: read, write or admin")
        grants = [ScopeGrant.parse(s) for s in scopes]
        if default_scope is not None and not any(g.covers(default_scope) for g in grants):
            raise InvalidInput(f"default scope {default_scope.label()} is outside the token's scopes")
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        now = _now()
        record = TokenRecord(
            token_id=token_id, principal_id=principal_id.strip(), secret_hash=_hash(secret),
            scopes=[g.label() for g in grants], permissions=sorted(set(permissions)), default_scope=default_scope,
            created_at=now, expires_at=now + timedelta(seconds=expires_in_seconds) if expires_in_seconds else None,
            description=description,
        )
        with self._editing() as records:
            records[token_id] = record
        return f"{PREFIX}{token_id}_{secret}", record

    def revoke(self, token_id: str) -> TokenRecord:
        with self._editing() as records:
            record = records.get(token_id)
            if record is None:
                raise NotFound(f"no token {token_id!r}; `artifact-mcp token list` shows the ids")
            if record.revoked_at is None:
                record = record.model_copy(update={"revoked_at": _now()})
                records[token_id] = record
            return record


def token_file_text(records: list[TokenRecord]) -> str:
    """`token list` output: one JSON object per line, never a secret."""
    return "\n".join(json.dumps(r.model_dump(mode="json", exclude={"secret_hash"})) for r in records)
