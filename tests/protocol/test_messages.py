"""Message models: round trips for every type and the rules each field enforces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloud_sync.protocol import (
    GENESIS_HASH,
    MalformedError,
    ack_payload,
    ack_ranges,
    decode_ack,
    decode_command,
    decode_hello,
    decode_record,
    decode_status,
    hello_payload,
    jsoncodec,
    rfc3339,
    status_payload,
    window_set_digest,
)
from cloud_sync.protocol.commands import WindowUpsertBody
from cloud_sync.protocol.control import HelloBody
from cloud_sync.protocol.messages import build_record

from .samples import COMMAND_BODIES, HUB, NOW, RECORD_BODIES, command, record, upsert_body


@pytest.mark.parametrize("type_", sorted(COMMAND_BODIES))
def test_command_round_trip(type_: str) -> None:
    decoded = decode_command(command(type_, seq=9))
    assert (decoded.type, decoded.seq, decoded.hub_id) == (type_, 9, HUB)
    assert jsoncodec.loads(command(type_))["body"] == COMMAND_BODIES[type_]
    assert decode_command(jsoncodec.dumps(decoded.model_dump(mode="json"))) == decoded


@pytest.mark.parametrize("type_", sorted(RECORD_BODIES))
def test_record_round_trip(type_: str) -> None:
    decoded = decode_record(record(type_, seq=4))
    assert (decoded.type, decoded.seq, decoded.body.prev_hash) == (type_, 4, GENESIS_HASH)
    assert jsoncodec.loads(record(type_))["body"] == RECORD_BODIES[type_]


def test_builders_take_models() -> None:
    body = WindowUpsertBody.model_validate(upsert_body())
    assert decode_command(command(body=body)).body == body
    with pytest.raises(MalformedError, match="body"):
        command(body=["not", "a", "mapping"])


def _command_with(**changes: Any) -> bytes:
    value = jsoncodec.loads(command())
    body = changes.pop("body", {})
    value.update(changes)
    value["body"].update(body)
    return jsoncodec.dumps(value)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"v": 2}, "v"),
        ({"v": True}, "v"),
        ({"seq": 0}, "seq"),
        ({"seq": 1.0}, "seq"),
        ({"seq": 2**63}, "seq"),
        ({"id": "not-a-ulid"}, "id"),
        ({"hub_id": "hub/1"}, "hub_id"),
        ({"issued_at": "2026-03-01T12:00:00+00:00"}, "issued_at"),
        ({"issued_at": "2026-02-30T12:00:00Z"}, "issued_at"),
        ({"expires_at": "2026-03-01T12:00:00.000Z"}, "expires_at must be after"),
        ({"expires_at": "2026-06-01T12:00:00.000Z"}, "too far"),
        ({"extra": 1}, "extra"),
        ({"body": {"ends_at": "2026-03-01T12:00:00Z"}}, "ends_at must be after"),
        ({"body": {"version": 0}}, "version"),
        ({"body": {"version": True}}, "version"),
        ({"body": {"max_uses": 0}}, "max_uses"),
        ({"body": {"enforcement": "cloud"}}, "enforcement"),
        ({"body": {"code_sealed": "AAAA"}}, "impossible length"),
        ({"body": {"code_sealed": "A+B/"}}, "base64url"),
        ({"body": {"courier": {"id": "c"}}}, "courier.name"),
        ({"body": {"window_id": ""}}, "window_id"),
        ({"type": "pod.recorded"}, "type"),
        ({"type": None}, "type"),
    ],
)
def test_command_rules(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(MalformedError, match=field.replace(".", r"\.")):
        decode_command(_command_with(**changes))


def test_sync_page_rules() -> None:
    body = {**COMMAND_BODIES["windows.sync"], "page": 2, "pages": 1}
    with pytest.raises(MalformedError, match="page must not exceed"):
        command("windows.sync", body=body)


def test_rejected_result_needs_reason() -> None:
    body = {**RECORD_BODIES["command.result"], "reason": None}
    with pytest.raises(MalformedError, match="needs a reason"):
        build_record(type="command.result", hub_id=HUB, seq=1, issued_at=NOW, body=body)
    applied = {**body, "result": "applied"}
    build_record(type="command.result", hub_id=HUB, seq=1, issued_at=NOW, body=applied)


@pytest.mark.parametrize(
    "payload", [b"[]", b'"x"', b"{", "not bytes", b'{"v":1}', b'{"type":"lock.event"}']
)
def test_decoders_only_raise_malformed(payload: Any) -> None:
    for decoder in (decode_command, decode_record, decode_ack, decode_hello, decode_status):
        with pytest.raises(MalformedError):
            decoder(payload)


def test_ack_round_trip_and_rules() -> None:
    ranges = ack_ranges([5, 1, 2, 3, 9, 3])
    assert ranges == [(1, 3), (5, 5), (9, 9)]
    ack = decode_ack(ack_payload(hub_id=HUB, issued_at=NOW, acked=ranges))
    assert ack.seq == 9
    assert ack.body.acked == ranges
    assert ack.body.covers(2)
    assert not ack.body.covers(4)
    for bad in ([(3, 1)], [(1, 3), (3, 4)], [(4, 5), (1, 2)], [], [(0, 1)]):
        with pytest.raises(MalformedError):
            ack_payload(hub_id=HUB, issued_at=NOW, acked=bad)
    value = jsoncodec.loads(ack_payload(hub_id=HUB, issued_at=NOW, acked=ranges))
    for seq in (8, 10):
        with pytest.raises(MalformedError, match="last acked seq"):
            decode_ack(jsoncodec.dumps({**value, "seq": seq}))
    value["body"]["acked"] = [[1, 2, 3]]
    with pytest.raises(MalformedError):
        decode_ack(jsoncodec.dumps(value))


def test_hello_round_trip() -> None:
    body = HelloBody(
        last_command_seq={"cloud-2026": 41},
        window_set_digest=window_set_digest([("win-1", 2)]),
        set_version=3,
        software_version="0.1.0",
    )
    hello = decode_hello(hello_payload(hub_id=HUB, seq=17, issued_at=NOW, body=body))
    assert (hello.seq, hello.body) == (17, body)


def test_window_set_digest_ignores_order() -> None:
    pairs = [("b", 1), ("a", 2)]
    assert window_set_digest(pairs) == window_set_digest(reversed(pairs))
    assert window_set_digest([]) != window_set_digest([("a", 1)])
    assert window_set_digest([("a", 1)]) != window_set_digest([("a", 2)])


def test_status_online_and_last_will() -> None:
    online = status_payload(
        hub_id=HUB, state="online", connected_at=NOW, software_version="0.1.0", health={"locks": 2}
    )
    will = status_payload(
        hub_id=HUB, state="offline", connected_at=NOW, software_version="0.1.0", reason="lost"
    )
    assert decode_status(online).health == {"locks": 2}
    assert decode_status(will).state == "offline"
    with pytest.raises(MalformedError):
        status_payload(hub_id="", state="online", connected_at=NOW, software_version="x")


def test_timestamps() -> None:
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"
    with pytest.raises(ValueError, match="aware"):
        rfc3339(datetime(2026, 1, 2))
    with pytest.raises(MalformedError, match="aware"):
        command(issued_at=datetime(2026, 3, 1, 12))
    later = NOW + timedelta(microseconds=1500)
    assert decode_command(command(issued_at=later)).issued_at == NOW + timedelta(milliseconds=1)
