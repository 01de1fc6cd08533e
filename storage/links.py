"""Signed, expiring download links.

A link token is `<payload>.<mac>`, both URL-safe base64 without padding: the payload is compact JSON naming the
artifact version, the expiry (Unix seconds) and the API token that asked for the link (None on stdio or without
auth); the MAC is HMAC-SHA256 over the payload with a secret kept in the catalog (`download_secret`), so links
survive restarts and every process serving the same store accepts them. Any failure to verify reads the same
from outside ("invalid or expired download link"): a caller learns nothing about why.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import mimetypes
import re
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from artifact_mcp.storage.errors import Forbidden
from artifact_mcp.storage.models import Scope

MIN_EXPIRES_IN = 60
MAX_EXPIRES_IN = 86_400
DEFAULT_EXPIRES_IN = 3600
DENIED = "invalid or expired download link"
# Domain separation: this secret signs nothing else, but the prefix keeps it that way if it ever does.
_CONTEXT = b"artifact-mcp/download-link/v1:"
_MAX_TOKEN_CHARS = 1024


class LinkClaims(BaseModel):
    """What a link token asserts. Short keys: the token travels in a URL."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    artifact_id: str = Field(alias="a")
    version: int = Field(alias="v")
    expires: int = Field(alias="e", description="Unix seconds.")
    token_id: str | None = Field(None, alias="t")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, _CONTEXT + payload.encode(), hashlib.sha256).digest())

    def sign(self, claims: LinkClaims) -> str:
        payload = _b64(claims.model_dump_json(by_alias=True, exclude_none=True).encode())
        return f"{payload}.{self._mac(payload)}"

    def verify(self, token: str, now: float) -> LinkClaims:
        """The claims of a genuine, unexpired token; Forbidden(DENIED) for anything else."""
        if len(token) > _MAX_TOKEN_CHARS or token.count(".") != 1:
            raise Forbidden(DENIED)
        payload, mac = token.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            raise Forbidden(DENIED)
        try:
            claims = LinkClaims.model_validate(json.loads(_unb64(payload)))
        except (binascii.Error, ValueError, ValidationError):
            raise Forbidden(DENIED) from None
        if claims.expires <= now:
            raise Forbidden(DENIED)
        return claims


class DownloadLink(BaseModel):
    """A signed link to one artifact version, and what it will serve."""

    token: str
    artifact_id: str
    version: int
    scope: Scope
    expires_at: datetime
    expires_in: int
    file_name: str
    content_type: str
    size_bytes: int
    blob_key: str | None = Field(None, description="Where the bytes are; None for text/JSON content (in the catalog).")

    @field_validator("expires_at", mode="after")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class DownloadTarget(BaseModel):
    """What a verified link serves: a blob, or the text of a content artifact."""

    artifact_id: str
    version: int
    scope: Scope
    token_id: str | None
    file_name: str
    content_type: str
    size_bytes: int
    sha256: str | None
    blob_key: str | None
    text: str | None = None


_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\"]+')


def download_file_name(file_name: str | None, name: str, mime_type: str) -> str:
    """The name a download is saved under: the uploaded file's, else the artifact's name with an extension."""
    if file_name:
        return _UNSAFE.sub("_", file_name).strip() or "artifact"
    base = _UNSAFE.sub("_", name).strip() or "artifact"
    mime = mime_type.split(";", 1)[0].strip().lower()
    ext = {"text/plain": ".txt", "text/markdown": ".md", "application/json": ".json"}.get(mime) or (
        mimetypes.guess_extension(mime, strict=False) or ""
    )
    return base if base.lower().endswith(ext) else base + ext
