"""Property tests for the parsers and parser paths no other test feeds arbitrary input.

Already covered elsewhere, not repeated: the protocol decoders on raw bytes, JSON and mutated
payloads (tests/protocol/test_fuzz.py), courier tokens (tests/protocol/test_tokens.py), the
Nuki BLE frame decoders and the message decoders listed in tests/locks/nuki_ble/test_codec.py,
the Nuki Bridge replies (tests/locks/nuki_bridge/test_codec.py) and the hub TOML file
(tests/config/test_tomlconfig.py). New here: acceptance of any payload *under a valid
signature*, any plaintext under valid HPKE sealing, any message under valid Nuki encryption,
the rest of the Nuki message decoders, the bridge-side token checks, the unlock body, the
cloud TOML file and env overrides of the hub's.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud_sync.protocol import (
    ProtocolError,
    accept_ack,
    accept_command,
    accept_hello,
    accept_record,
    check_code,
    jsoncodec,
    verify,
)
from cloud_sync.protocol.tomlconfig import ConfigFileError
from fuzz import samples
from fuzz.targets import TARGETS, parse_cloud_config, parse_hub_config, parse_unlock_body
from gateway.locks.ble.nuki import codec, keypad, keyturner, messages
from gateway.locks.ble.nuki.errors import NukiFrameError
from gateway.locks.bridges import nuki_bridge_api as bridge
from tests.protocol.test_fuzz import json_paths, replace_at

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _drop(value: Any, path: tuple[Any, ...]) -> Any:
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        if not rest:
            return {k: v for k, v in value.items() if k != head}
        return {**value, head: _drop(value[head], rest)}
    if not rest:
        return [item for i, item in enumerate(value) if i != head]
    return [_drop(item, rest) if i == head else item for i, item in enumerate(value)]


def mutated(sample: bytes, data: st.DataObject) -> bytes:
    """``sample`` with one member (at any depth) dropped or replaced by any JSON value."""
    value = jsoncodec.loads(sample)
    path = data.draw(st.sampled_from(json_paths(value)[1:]), label="path")
    if data.draw(st.booleans(), label="drop"):
        return jsoncodec.dumps(_drop(value, path))
    return jsoncodec.dumps(replace_at(value, path, data.draw(JSON, label="new")))


SIGNED_PATHS = [
    (samples.commands, samples.CLOUD, samples.COMMAND_KEYS, "command"),
    (samples.records, samples.HUB_SIGNER, samples.HUB_KEYS, "record"),
    (samples.acks, samples.CLOUD, samples.COMMAND_KEYS, "ack"),
    (samples.hellos, samples.HUB_SIGNER, samples.HUB_KEYS, "hello"),
]


def accept(kind: str, payload: bytes, signer: Any, keys: Any) -> object:
    verified = verify(signer.sign(payload), keys)
    if kind == "command":
        return accept_command(verified, hub_id=samples.HUB, now=samples.NOW)
    if kind == "record":
        return accept_record(verified, hub_id=samples.HUB)
    if kind == "ack":
        return accept_ack(verified, hub_id=samples.HUB)
    return accept_hello(verified, hub_id=samples.HUB)


@PROPERTY
@given(st.sampled_from(SIGNED_PATHS), st.data())
def test_any_payload_under_a_valid_signature_is_accepted_or_our_error(
    path: Any, data: st.DataObject
) -> None:
    make, signer, keys, kind = path
    payload = mutated(data.draw(st.sampled_from(make())), data)
    with contextlib.suppress(ProtocolError):
        accept(kind, payload, signer, keys)


@PROPERTY
@given(st.binary(max_size=200))
def test_any_plaintext_sealed_to_the_hub_opens_to_a_valid_code_or_our_error(plain: bytes) -> None:
    target = TARGETS["sealed_codes"]
    try:
        code = target.parse(b"\x01" + plain)
    except ProtocolError:
        return
    assert isinstance(code, str)
    assert check_code(code) == code == plain.decode("ascii")


NUKI_DECODERS = [
    messages.decode_request_data,
    messages.decode_key,
    messages.decode_challenge,
    messages.decode_status,
    messages.decode_confirmation,
    messages.decode_time,
    lambda b: messages.split_challenge(b, pin=True),
    lambda b: messages.split_challenge(b, pin=False),
    keyturner.decode_log_request,
    keyturner.decode_log_entry_count,
    keypad.decode_code_id,
    keypad.decode_list_request,
    keypad.decode_code_count,
    keypad.decode_remove_request,
]


@PROPERTY
@given(st.sampled_from(NUKI_DECODERS), st.binary(max_size=120))
def test_the_other_nuki_decoders_raise_only_their_error(decode: Any, data: bytes) -> None:
    with contextlib.suppress(NukiFrameError):
        decode(data)


@PROPERTY
@given(st.sampled_from(list(codec.Command)), st.binary(max_size=120))
def test_any_message_inside_valid_nuki_encryption_is_parsed_or_our_error(
    command: int, payload: bytes
) -> None:
    with contextlib.suppress(NukiFrameError):
        TARGETS["nuki_ble"].parse(b"\x02" + command.to_bytes(2, "little") + payload)


@PROPERTY
@given(st.text(max_size=40), st.text(max_size=12), st.text(max_size=80))
def test_bridge_token_checks_raise_only_their_error(ts: str, rnr: str, digest: str) -> None:
    with contextlib.suppress(bridge.NukiBridgeError):
        bridge.check_hashed("token", ts, rnr, digest)
    with contextlib.suppress(bridge.NukiBridgeError):
        bridge.check_encrypted("token", digest, ts)


BODY_KEYS = st.sampled_from(["code", "token", "Code", "", "code "])
BAD_BODY = (web.HTTPBadRequest, web.HTTPRequestEntityTooLarge)


@PROPERTY
@given(st.dictionaries(BODY_KEYS, JSON, max_size=3) | JSON, st.integers(0, 2))
def test_any_unlock_body_is_one_credential_or_a_400(value: object, mode: int) -> None:
    raw = json.dumps(value).encode()
    try:
        result = parse_unlock_body(bytes([mode]) + raw)
    except BAD_BODY:
        good = (
            isinstance(value, dict)
            and len(value) == 1
            and next(iter(value)) in {"code", "token"}
            and isinstance(next(iter(value.values())), str)
        )
        assert not good or len(raw) > 4096, value
        return
    assert isinstance(value, dict)
    assert len(value) == 1
    assert isinstance(result, bool | str)


@PROPERTY
@given(st.binary(max_size=300))
def test_any_bytes_as_unlock_body_is_one_credential_or_a_400(raw: bytes) -> None:
    with contextlib.suppress(*BAD_BODY):
        parse_unlock_body(raw)


@PROPERTY
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_cloud_config_bytes_give_a_config_or_our_error(data: bytes) -> None:
    with contextlib.suppress(ConfigFileError):
        parse_cloud_config(data)


CLOUD_TOML = samples.cloud_configs()[0].decode()


@PROPERTY
@given(st.data())
def test_any_change_to_the_cloud_example_gives_a_config_or_our_error(data: st.DataObject) -> None:
    lines = CLOUD_TOML.splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    key = lines[index].partition("=")[0]
    value = data.draw(
        st.text(alphabet='"[]{}.,=0123456789abcdefxyz:/_-+ #', max_size=30) | JSON.map(json.dumps)
    )
    lines[index] = f"{key}= {value}" if "=" in lines[index] else value
    with contextlib.suppress(ConfigFileError):
        parse_cloud_config("\n".join(lines).encode())


@PROPERTY
@given(st.integers(0, 255), st.text(max_size=60))
def test_any_env_override_gives_a_usable_config_or_our_error(key: int, value: str) -> None:
    with contextlib.suppress(ConfigFileError):
        parse_hub_config(bytes([1, key]) + value.encode())
