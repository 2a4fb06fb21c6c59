"""Every ``json <type>`` example in docs/protocol.md decodes with our models."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloud_sync.protocol import (
    decode_ack,
    decode_command,
    decode_hello,
    decode_record,
    decode_status,
    jsoncodec,
    load_command_keys,
    verify,
)
from cloud_sync.protocol.commands import COMMAND_TYPES
from cloud_sync.protocol.records import RECORD_TYPES

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
BLOCKS = re.findall(r"^```json ([\w.]+)\n(.*?)^```$", DOC.read_text(encoding="utf-8"), re.M | re.S)
DECODERS: dict[str, Callable[[bytes], object]] = {
    **dict.fromkeys(COMMAND_TYPES, decode_command),
    **dict.fromkeys(RECORD_TYPES, decode_record),
    "records.ack": decode_ack,
    "hub.hello": decode_hello,
    "status": decode_status,
}


def _keys() -> dict[str, Ed25519PublicKey]:
    (text,) = [body for tag, body in BLOCKS if tag == "keys"]
    return load_command_keys(jsoncodec.loads(text))


def test_every_message_type_has_an_example() -> None:
    assert {tag for tag, _ in BLOCKS} == {*DECODERS, "envelope", "keys"}


@pytest.mark.parametrize(("tag", "text"), [b for b in BLOCKS if b[0] in DECODERS])
def test_example_decodes(tag: str, text: str) -> None:
    decoded = DECODERS[tag](jsoncodec.dumps(jsoncodec.loads(text)))
    assert getattr(decoded, "type", "status") == tag


def test_envelope_example_verifies() -> None:
    (text,) = [body for tag, body in BLOCKS if tag == "envelope"]
    verified = verify(jsoncodec.loads(text), _keys())
    assert decode_command(verified.payload).type == "task.complete"
