"""The store's operations, each registered once: `@operation(...)` on an `ArtifactStore` method.

Everything the ownership layer needs follows from the registration and the method itself: the RPC parameter
model (the signature), the result (the return annotation; a write returns `(result, ChangeEvent)` and the event
is broadcast, not returned), whether a forwarder may send it again after the owner vanished mid-call, which job
runner it wakes, and the `StoreClient` method of the same name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Operation:
    name: str
    fn: Callable[..., Any]
    retryable: bool  # safe to send again after the owner vanished mid-call
    enqueues: bool  # the index job runner has work after it
    generates: bool  # the generation job runner has work after it
    fresh_id: str | None  # a parameter the client fills with a new artifact id (a retry repeats it)
    public: bool  # a StoreClient method of the same name (else only called by the client's own methods)


OPERATIONS: dict[str, Operation] = {}


def operation(*, retryable: bool = False, enqueues: bool = False, generates: bool = False,
              fresh_id: str | None = None, public: bool = True) -> Callable[[F], F]:
    """Register a store method as an operation every process can call (see the module docstring)."""

    def register(fn: F) -> F:
        name = fn.__name__
        if name in OPERATIONS:
            raise ValueError(f"store operation {name!r} is registered twice")
        OPERATIONS[name] = Operation(name=name, fn=fn, retryable=retryable, enqueues=enqueues,
                                     generates=generates, fresh_id=fresh_id, public=public)
        return fn

    return register
