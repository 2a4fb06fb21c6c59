"""Every parser returns a value or raises our ProtocolError subclass, for any input."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_sync.protocol import (
    DEFAULT_PREFIX,
    ProtocolError,
    Signer,
    b64url_decode,
    check_code,
    check_ulid,
    decode_ack,
    decode_batch,
    decode_command,
    decode_hello,
    decode_record,
    decode_status,
    jsoncodec,
    load_command_keys,
    load_ed25519_public,
    load_x25519_public,
    open_code,
    parse_topic,
    verify,
    verify_chain,
)

from .samples import COMMAND_BODIES, HUB, RECORD_BODIES, command, record

FUZZ = settings(max_examples=60, deadline=500, suppress_health_check=[HealthCheck.too_slow])
KEY = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
KEYS = {"cloud-2026": KEY.public_key()}
SEALING = X25519PrivateKey.from_private_bytes(bytes(range(32)))
DECODERS: list[Callable[[bytes], object]] = [
    decode_command,
    decode_record,
    decode_ack,
    decode_hello,
    decode_status,
    decode_batch,
    lambda data: verify_chain([data]),
]
TEXT_PARSERS: list[Callable[[str], object]] = [
    b64url_decode,
    check_ulid,
    check_code,
    load_ed25519_public,
    load_x25519_public,
    lambda text: open_code(text, "win-1", SEALING),
    lambda text: open_code("A" * 80, text, SEALING),
    lambda text: parse_topic(DEFAULT_PREFIX, text),
    lambda text: parse_topic(text, f"{DEFAULT_PREFIX}/hubs/{HUB}/up/records"),
    jsoncodec.loads,
    lambda text: load_command_keys({text: text}),
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _only_ours(parse: Callable[[Any], object], value: object) -> None:
    with contextlib.suppress(ProtocolError):
        parse(value)


@FUZZ
@given(st.binary(max_size=300))
def test_bytes_into_decoders(data: bytes) -> None:
    for decode in DECODERS:
        _only_ours(decode, data)


@FUZZ
@given(json_values)
def test_json_into_decoders_and_verify(value: object) -> None:
    data = jsoncodec.dumps(value)
    for decode in DECODERS:
        _only_ours(decode, data)
    _only_ours(lambda v: verify(v, KEYS), value)
    _only_ours(lambda v: verify({"protected": v, "payload": v, "signature": v}, KEYS), value)


@FUZZ
@given(st.text(max_size=200))
def test_text_into_parsers(text: str) -> None:
    for parse in TEXT_PARSERS:
        _only_ours(parse, text)


def json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value (the value itself first); shared with tests/fuzz."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += json_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += json_paths(item, (*prefix, index))
    return out


def replace_at(value: Any, path: tuple[Any, ...], new: object) -> Any:
    """``value`` with the member at ``path`` replaced by ``new``."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replace_at(value[head], rest, new)}
    return [replace_at(item, rest, new) if i == head else item for i, item in enumerate(value)]


SAMPLES = [command(t) for t in COMMAND_BODIES] + [record(t) for t in RECORD_BODIES]


@FUZZ
@given(st.sampled_from(SAMPLES), st.data(), json_values)
def test_mutated_payloads(sample: bytes, data: st.DataObject, new: object) -> None:
    value = jsoncodec.loads(sample)
    path = data.draw(st.sampled_from(json_paths(value)))
    mutated = jsoncodec.dumps(replace_at(value, path, new))
    for decode in DECODERS:
        _only_ours(decode, mutated)


@FUZZ
@given(st.binary(min_size=1, max_size=64), st.integers(min_value=0, max_value=500))
def test_mutated_envelopes(junk: bytes, where: int) -> None:
    envelope = Signer("cloud-2026", KEY).sign(command())
    for member, text in envelope.items():
        i = where % len(text)
        mangled = text[:i] + junk.decode("latin-1") + text[i + 1 :]
        _only_ours(lambda e: verify(e, KEYS), {**envelope, member: mangled})
