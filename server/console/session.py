"""Console sign-in: a token becomes an HttpOnly, SameSite=Strict session cookie; CSRF tokens for every form.

The cookie carries no secret of the token: `token_id.expiry.signature`, where the signature is an HMAC (a key kept
in the data directory, so every process serving this store accepts it) over the id, the expiry and the token's
stored hash. Every request looks the token up again in the token file, so revoking the token (or its expiry) ends
its sessions at once, in every process; a token re-created under another secret does not revive them.

CSRF: a random `amcp_csrf` cookie (SameSite=Strict, set on the first page) anchors the forms' token, an HMAC over
the anchor and the session; every POST must send it back as the `csrf_token` field or an `X-CSRF-Token` header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from artifact_mcp.server.auth.tokens import TokenFile
from artifact_mcp.storage.access import Principal

SESSION_COOKIE = "amcp_session"
CSRF_COOKIE = "amcp_csrf"
SCOPE_COOKIE = "amcp_scope"  # the scope this browser chose (checked against the principal on every request)
SESSION_SECONDS = 12 * 3600
KEY_FILE = "console-session.key"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_key(data_dir: Path) -> bytes:
    """The session key: created once (0600, exclusively, so two processes starting together agree), then read."""
    path = data_dir / KEY_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process has just created it and may not have written it yet
            key = path.read_bytes()
            if len(key) == 32:
                return key
            time.sleep(0.02)
        raise RuntimeError(f"{path} is not a 32-byte key; delete it to make a new one (signs everyone out)") from None
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


@dataclass(frozen=True)
class Session:
    principal: Principal
    cookie: str


class Sessions:
    def __init__(self, tokens: TokenFile, key: bytes) -> None:
        self.tokens = tokens
        self.key = key

    def _sign(self, *parts: str) -> str:
        return _b64(hmac.new(self.key, "|".join(parts).encode(), hashlib.sha256).digest())

    def open(self, token: str) -> tuple[str, int] | None:
        """A session cookie value and its lifetime in seconds for a valid token, else None."""
        record = self.tokens.verify(token.strip())
        if record is None:
            return None
        expires = int(time.time()) + SESSION_SECONDS
        if record.expires_at is not None:
            expires = min(expires, int(record.expires_at.timestamp()))
        value = f"{record.token_id}.{expires}"
        return f"{value}.{self._sign('session', value, record.secret_hash)}", expires - int(time.time())

    def resolve(self, cookie: str | None) -> Session | None:
        """The session's principal, if the cookie is genuine, unexpired and its token still active."""
        if not cookie or cookie.count(".") != 2:
            return None
        token_id, expires, signature = cookie.split(".")
        if not expires.isdigit() or int(expires) <= time.time():
            return None
        record = self.tokens.get(token_id)
        if record is None or not record.active():
            return None
        if not hmac.compare_digest(signature, self._sign("session", f"{token_id}.{expires}", record.secret_hash)):
            return None
        return Session(principal=record.principal(), cookie=cookie)

    def csrf_token(self, anchor: str, session: str | None) -> str:
        return self._sign("csrf", anchor, session or "")

    def csrf_ok(self, anchor: str | None, session: str | None, sent: str | None) -> bool:
        if not anchor or not sent:
            return False
        return hmac.compare_digest(sent, self.csrf_token(anchor, session))


def new_anchor() -> str:
    return secrets.token_urlsafe(24)
