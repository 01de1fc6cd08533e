"""Opaque, tamper-evident keyset cursors.

A cursor is base64url(JSON payload) + "." + base64url(HMAC-SHA256). The payload holds the sort key of
the last row returned, a digest of the query it belongs to (scope + filters) and when it was issued.
A forged, truncated, foreign or expired cursor is rejected with a message that says what to do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from artifact_mcp.storage.errors import InvalidInput

CURSOR_TTL_SECONDS = 24 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def query_digest(parts: object) -> str:
    """Stable digest of the scope and filters a cursor belongs to."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


@dataclass(frozen=True)
class Position:
    created_at_us: int
    artifact_id: str


class CursorCodec:
    def __init__(self, secret: bytes, ttl_seconds: int = CURSOR_TTL_SECONDS) -> None:
        self._secret = secret
        self._ttl = ttl_seconds

    def _sign(self, body: bytes) -> str:
        return _b64(hmac.new(self._secret, body, hashlib.sha256).digest()[:18])

    def encode(self, position: Position, digest: str) -> str:
        body = json.dumps(
            {"t": position.created_at_us, "i": position.artifact_id, "q": digest, "at": int(time.time())},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(body)}.{self._sign(body)}"

    def decode(self, cursor: str, digest: str) -> Position:
        restart = "start again without a cursor"
        try:
            body_part, sig_part = cursor.split(".", 1)
            body = _unb64(body_part)
        except (ValueError, TypeError):
            raise InvalidInput(f"cursor is malformed (truncated or not from this server); {restart}") from None
        if not hmac.compare_digest(self._sign(body), sig_part):
            raise InvalidInput(f"cursor failed its signature check (edited, truncated or forged); {restart}")
        try:
            payload = json.loads(body)
            position = Position(int(payload["t"]), str(payload["i"]))
            issued = int(payload["at"])
            cursor_digest = str(payload["q"])
        except (ValueError, KeyError, TypeError):
            raise InvalidInput(f"cursor is malformed; {restart}") from None
        if cursor_digest != digest:
            raise InvalidInput(
                "cursor belongs to a different query (other scope or filters); pass the same filters as the "
                f"call that returned it, or {restart}"
            )
        if time.time() - issued > self._ttl:
            raise InvalidInput(f"cursor expired (older than {self._ttl // 3600} h); {restart}")
        return position
