"""The socket protocol between a forwarder and the owner, derived from the operation registry.

Frames: one JSON header line, then `len` bytes of JSON body (pydantic-encoded, so bytes travel as base64).
Forwarder -> owner: a call (`id`, `method`, body = the parameters). Owner -> forwarder: either a response (`id`,
body = the result, or `error`) or a change event (`event`).
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream
from pydantic import BaseModel, ConfigDict, TypeAdapter, create_model

from artifact_mcp.storage.models import ChangeEvent
from artifact_mcp.storage.ownership.registry import OPERATIONS, Operation

_MAX_HEADER = 64 * 1024
EVENT = TypeAdapter(ChangeEvent)


@dataclass(frozen=True)
class Method:
    """One operation as the socket carries it. Its pydantic models are built on first use: a process that owns
    the store and serves no forwarder never needs them (and a server builds every `StoreClient` method at start)."""

    op: Operation
    hints: dict[str, Any]  # the store method's type hints
    result: Any  # the result type (a write's change event left out)

    @cached_property
    def params(self) -> type[BaseModel]:
        """Every parameter of the store method."""
        return _params_model(self.op, self.hints)

    @cached_property
    def result_adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.result)


def result_type(hint: Any) -> Any:
    """What a caller gets back from a method annotated `hint`: a write's `tuple[X, ChangeEvent]` is `X` (the
    event is broadcast), also inside a union (`X | tuple[X, ChangeEvent]`)."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is ChangeEvent:
            return args[0]
    if origin in (typing.Union, types.UnionType):
        members = list(dict.fromkeys(result_type(a) for a in typing.get_args(hint)))
        return members[0] if len(members) == 1 else typing.Union[tuple(members)]  # noqa: UP007
    return hint


def _params_model(op: Operation, hints: dict[str, Any]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(op.fn).parameters.items():
        if pname == "self":
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (hints[pname], default)
    return create_model(f"{op.name}_params", __config__=ConfigDict(ser_json_bytes="base64",
                                                                    val_json_bytes="base64"), **fields)


@cache
def method(name: str) -> Method:
    op = OPERATIONS[name]
    hints = typing.get_type_hints(op.fn)
    return Method(op=op, hints=hints, result=result_type(hints["return"]))


async def write_frame(stream: anyio.abc.ByteSendStream, lock: anyio.Lock, header: dict[str, Any],
                      body: bytes = b"") -> None:
    header["len"] = len(body)
    async with lock:
        await stream.send(json.dumps(header).encode() + b"\n" + body)


async def read_frame(reader: BufferedByteReceiveStream) -> tuple[dict[str, Any], bytes]:
    header = json.loads(await reader.receive_until(b"\n", _MAX_HEADER))
    body = await reader.receive_exactly(header["len"]) if header["len"] else b""
    return header, body
