"""API tokens, kept as SHA-256 hashes (the token itself is shown once, at creation): in a JSON file beside an
embedded catalog, in the PostgreSQL catalog's `tokens` table when the catalog is one (storage/tokens.py).

A token reads `amcp_<token_id>_<secret>`: the id finds the record without scanning, the 256-bit secret
makes a salted slow hash unnecessary. Every process re-reads the file when it changes, so a revoke
made by `artifact-mcp token revoke` takes effect at once in running servers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path

from artifact_mcp.storage.access import Permission, ScopeGrant
from artifact_mcp.storage.errors import InvalidInput, NotFound
from artifact_mcp.storage.models import Scope
from artifact_mcp.storage.tokens import FileTokenRecords, TokenRecord, TokenRecords, now_utc, token_records

__all__ = ["PREFIX", "TokenFile", "TokenRecord", "token_file_text"]


PREFIX = "amcp_"


def _now() -> datetime:
    return now_utc()


def _hash(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


class TokenFile:
    """The tokens: issued, verified and revoked here, their records kept by a record store (storage/tokens.py):
    a JSON file beside an embedded catalog, or the PostgreSQL catalog's table that every replica reads."""

    def __init__(self, path: Path | None = None, *, records: TokenRecords | None = None) -> None:
        if records is None:
            assert path is not None, "give the tokens file or a record store"
            records = FileTokenRecords(path)
        self.store = records
        self.path = path

    @classmethod
    def for_catalog(cls, catalog_path: str, tokens_path: Path) -> TokenFile:
        return cls(tokens_path, records=token_records(catalog_path, tokens_path))

    def close(self) -> None:
        self.store.close()

    @property
    def reads_block(self) -> bool:
        """Whether verifying a token may wait on more than a stat (a database round trip)."""
        return self.store.reads_block

    def shared_secret(self, name: str) -> bytes | None:
        """A random key every process of a shared catalog agrees on (None where tokens live in a local file)."""
        return self.store.shared_secret(name)

    # --- reading -------------------------------------------------------------------------------

    def records(self) -> list[TokenRecord]:
        return sorted(self.store.load().values(), key=lambda r: r.created_at)

    def get(self, token_id: str) -> TokenRecord | None:
        return self.store.get(token_id)

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

    def _editing(self) -> AbstractContextManager[dict[str, TokenRecord]]:
        return self.store.edit()

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
