"""The payload frame every signed message shares, and strict decoding into wire models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from . import jsoncodec
from .errors import MalformedError
from .fields import MAX_SEQ, PROTOCOL_VERSION, HubId, Timestamp, Ulid, WireModel, dump

T = TypeVar("T")
# Enough to name the field and the rule; the full pydantic report can be long and echo input.
MAX_ERROR_MESSAGE = 200


class Payload(WireModel):
    """Members common to every signed payload; subclasses fix ``type`` and ``body``."""

    v: Annotated[int, Field(ge=PROTOCOL_VERSION, le=PROTOCOL_VERSION)]
    type: str
    id: Ulid
    hub_id: HubId
    seq: Annotated[int, Field(ge=0, le=MAX_SEQ)]
    issued_at: Timestamp


def describe(exc: ValidationError) -> str:
    """A short message naming the first failing field and its rule."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    if first["type"] in {"union_tag_invalid", "union_tag_not_found"}:
        return "type: missing or not a known message type"
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    return f"{where}: {first['msg']}"[:MAX_ERROR_MESSAGE]


def validate(adapter: TypeAdapter[T], value: object) -> T:
    """Validate a Python value with ``adapter``; pydantic errors become MalformedError."""
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise MalformedError(describe(exc)) from exc


def decode(adapter: TypeAdapter[T], payload: bytes) -> T:
    """Parse strict JSON payload bytes into a model; raise only MalformedError."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise MalformedError("payload must be bytes")
    value = jsoncodec.loads(payload)
    if not isinstance(value, dict):
        raise MalformedError("payload is not a JSON object")
    return validate(adapter, value)


def frame(
    *, type_: str, hub_id: str, seq: int, issued_at: object, body: object, message_id: str
) -> dict[str, Any]:
    """Assemble the payload members as a dict ready for validation."""
    if isinstance(body, BaseModel):
        body = dump(body)
    elif isinstance(body, Mapping):
        body = dict(body)
    return {
        "v": PROTOCOL_VERSION,
        "type": type_,
        "id": message_id,
        "hub_id": hub_id,
        "seq": seq,
        "issued_at": issued_at,
        "body": body,
    }


def encode(model: BaseModel) -> bytes:
    """Serialise a validated model to the exact payload bytes that get signed."""
    return jsoncodec.dumps(dump(model))
