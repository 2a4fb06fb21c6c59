"""Control messages: ``records.ack`` (cloud -> hub), ``hub.hello`` and the status JSON."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, TypeAdapter, model_validator

from . import jsoncodec
from .fields import (
    PROTOCOL_VERSION,
    Count,
    Details,
    Hex64,
    HubId,
    Ident,
    Seq,
    Timestamp,
    Token,
    WireModel,
)
from .ids import new_ulid
from .payload import Payload, encode, frame, validate

# One ack covers at most one batch's worth of separate runs; gaps are rare in practice.
MAX_ACK_RANGES = 500
# A hub trusts a handful of cloud keys at once (current and next, during rotation).
MAX_COMMAND_KEYS = 16
# "1.2.3+build.4" and the like.
MAX_SOFTWARE_VERSION_LENGTH = 64


def _pair(value: object) -> object:
    # JSON has no tuples; a two-element array is one range.
    return tuple(value) if isinstance(value, list) else value


AckRange = Annotated[tuple[Seq, Seq], BeforeValidator(_pair)]


class AckBody(WireModel):
    """Inclusive seq ranges the cloud has durably stored, ascending and disjoint."""

    acked: Annotated[list[AckRange], Field(min_length=1, max_length=MAX_ACK_RANGES)]

    @model_validator(mode="after")
    def _check(self) -> AckBody:
        previous = 0
        for first, last in self.acked:
            if first > last:
                raise ValueError("a range needs first <= last")
            if first <= previous:
                raise ValueError("ranges must ascend without overlap")
            previous = last
        return self

    def covers(self, seq: int) -> bool:
        """Whether ``seq`` lies in one of the acked ranges."""
        return any(first <= seq <= last for first, last in self.acked)


class RecordsAck(Payload):
    """``records.ack``: ``seq`` is the highest acked record seq (the end of the last range)."""

    type: Literal["records.ack"]
    seq: Seq
    body: AckBody

    @model_validator(mode="after")
    def _check_seq(self) -> RecordsAck:
        if self.seq != self.body.acked[-1][1]:
            raise ValueError("seq must equal the last acked seq")
        return self


class HelloBody(WireModel):
    """What the hub holds, so the cloud can resend or resync."""

    last_command_seq: Annotated[dict[Ident, Count], Field(max_length=MAX_COMMAND_KEYS)]
    window_set_digest: Hex64
    set_version: Count | None = None
    software_version: Annotated[str, Field(min_length=1, max_length=MAX_SOFTWARE_VERSION_LENGTH)]


class HubHello(Payload):
    """``hub.hello``: ``seq`` is the highest record seq the hub has written (0 if none)."""

    type: Literal["hub.hello"]
    body: HelloBody


class HubStatus(WireModel):
    """The plain (unsigned) JSON on ``up/status``; ``offline`` is also the Last Will."""

    v: Annotated[int, Field(ge=PROTOCOL_VERSION, le=PROTOCOL_VERSION)]
    hub_id: HubId
    state: Literal["online", "offline"]
    connected_at: Timestamp
    software_version: Annotated[str, Field(min_length=1, max_length=MAX_SOFTWARE_VERSION_LENGTH)]
    reason: Token | None = None
    health: Details = Field(default_factory=dict)


ACK_ADAPTER: TypeAdapter[RecordsAck] = TypeAdapter(RecordsAck)
HELLO_ADAPTER: TypeAdapter[HubHello] = TypeAdapter(HubHello)
STATUS_ADAPTER: TypeAdapter[HubStatus] = TypeAdapter(HubStatus)


def ack_ranges(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Collapse seqs into the ascending, disjoint inclusive ranges an ack carries."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and ranges[-1][1] + 1 == seq:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def ack_payload(
    *,
    hub_id: str,
    issued_at: datetime,
    acked: Iterable[tuple[int, int]],
    ack_id: str | None = None,
) -> bytes:
    """Build a ``records.ack`` payload; raise MalformedError on bad ranges."""
    ranges = [list(pair) for pair in acked]
    seq = ranges[-1][-1] if ranges and ranges[-1] else 0
    members = frame(
        type_="records.ack",
        hub_id=hub_id,
        seq=seq,
        issued_at=issued_at,
        body={"acked": ranges},
        message_id=ack_id or new_ulid(),
    )
    return encode(validate(ACK_ADAPTER, members))


def hello_payload(
    *,
    hub_id: str,
    seq: int,
    issued_at: datetime,
    body: HelloBody | Mapping[str, Any],
    hello_id: str | None = None,
) -> bytes:
    """Build a ``hub.hello`` payload; raise MalformedError on a bad field."""
    members = frame(
        type_="hub.hello",
        hub_id=hub_id,
        seq=seq,
        issued_at=issued_at,
        body=body,
        message_id=hello_id or new_ulid(),
    )
    return encode(validate(HELLO_ADAPTER, members))


def window_set_digest(windows: Iterable[tuple[str, int]]) -> str:
    """Hex SHA-256 of the sorted ``[[window_id, version], ...]`` JSON, order-independent."""
    pairs = sorted([window_id, version] for window_id, version in windows)
    return hashlib.sha256(jsoncodec.dumps(pairs)).hexdigest()


def status_payload(
    *,
    hub_id: str,
    state: Literal["online", "offline"],
    connected_at: datetime,
    software_version: str,
    reason: str | None = None,
    health: Mapping[str, Any] | None = None,
) -> bytes:
    """Build the ``up/status`` JSON (online, or the offline Last Will)."""
    members = {
        "v": PROTOCOL_VERSION,
        "hub_id": hub_id,
        "state": state,
        "connected_at": connected_at,
        "software_version": software_version,
        "reason": reason,
        "health": dict(health or {}),
    }
    return jsoncodec.dumps(validate(STATUS_ADAPTER, members).model_dump(mode="json"))
