"""Strict JSON, base64url and ULIDs."""

from __future__ import annotations

import pytest

from cloud_sync.protocol import MalformedError, b64url_decode, check_ulid, jsoncodec, new_ulid
from cloud_sync.protocol.jsoncodec import MAX_JSON_DEPTH


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"a":2}',
        "NaN",
        "[Infinity]",
        "1e400",
        "1" * 5000,
        '"\\ud800"',
        '{"\\udc00":1}',
        '[["\\udfff"]]',
        "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
        "",
        "{",
    ],
)
def test_loads_rejects(text: str) -> None:
    with pytest.raises(MalformedError):
        jsoncodec.loads(text)


def test_loads_accepts() -> None:
    assert jsoncodec.loads(b'{"a":["\\ud83d\\ude00","\\\\ud800 is text"]}') == {
        "a": ["\U0001f600", "\\ud800 is text"]
    }
    assert jsoncodec.loads('"\\\\u"') == "\\u"
    assert jsoncodec.loads('[1, null, "\\ud83d\\ude00"]') == [1, None, "\U0001f600"]
    assert jsoncodec.loads(bytearray(b"[1.5]")) == [1.5]


def test_loads_rejects_bad_input_types() -> None:
    with pytest.raises(MalformedError, match="UTF-8"):
        jsoncodec.loads(b"\xff")
    with pytest.raises(MalformedError, match="bytes or str"):
        jsoncodec.loads(12)  # type: ignore[arg-type]


def test_dumps_is_compact_and_sorted() -> None:
    assert jsoncodec.dumps({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


def test_b64url() -> None:
    assert b64url_decode("") == b""
    for bad in ("A", "AB=", "A+", "AB", 5):
        with pytest.raises(MalformedError):
            b64url_decode(bad)  # type: ignore[arg-type]


def test_ulids() -> None:
    ulid = new_ulid(1_700_000_000_000)
    assert check_ulid(ulid) == ulid
    assert new_ulid() != new_ulid()
    for bad in ("", "8" + "0" * 25, "0" * 25 + "I", ulid.lower()):
        with pytest.raises(MalformedError):
            check_ulid(bad)
