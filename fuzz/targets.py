"""One fuzz target per parser: bytes in, a valid value or the parser's own error out.

``Target.check`` is what atheris calls. Any exception that is not one of the target's
``errors`` propagates: atheris reports it as a crash and keeps the input (CONVENTIONS rule 11).
Most targets read their first byte as a mode, so one target reaches a parser both with raw
bytes and behind a valid signature or encryption (where random bytes would never get).
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, cast

from aiohttp import web

from cloud_sync.config import CloudConfig
from cloud_sync.protocol import (
    DEFAULT_PREFIX,
    ProtocolError,
    accept_ack,
    accept_command,
    accept_hello,
    accept_record,
    b64url_decode,
    b64url_encode,
    check_code,
    decode_ack,
    decode_batch,
    decode_command,
    decode_hello,
    decode_record,
    decode_status,
    encode_batch,
    jsoncodec,
    open_code,
    parse_topic,
    verify,
    verify_chain,
    verify_courier_token,
)
from cloud_sync.protocol.envelope import Keys, Signer, Verified, sign_parts
from cloud_sync.protocol.replay import ReplayGuard
from cloud_sync.protocol.sealing import INFO_PREFIX, SUITE
from cloud_sync.protocol.tokens import COURIER_TYP, check_token_time
from cloud_sync.protocol.tomlconfig import ConfigFileError, parse_config
from gateway.access.codes import well_formed
from gateway.api import MAX_UNLOCK_BODY, _credential, read_json
from gateway.config import ENV_PREFIX, GatewayConfig
from gateway.daemon import lockout_policy
from gateway.locks.ble.nuki import codec, events, keypad, keyturner, messages
from gateway.locks.ble.nuki.errors import NukiFrameError
from gateway.locks.bridges import nuki_bridge_api as bridge
from gateway.locks.bridges.nuki_bridge_api import NukiBridgeError

from . import samples

# Leeway the hub allows on courier tokens (gateway.access.decide.TOKEN_LEEWAY_SECONDS).
TOKEN_LEEWAY_SECONDS = 60
CONFIG_DIR = PurePath("/etc/lockhub")
Parse = Callable[[bytes], object]


@dataclass(frozen=True, slots=True)
class Target:
    """A parser under fuzzing: how to feed it, which errors are its own, where to start."""

    name: str
    parse: Parse
    errors: tuple[type[BaseException], ...]
    seeds: Callable[[], list[bytes]]

    def check(self, data: bytes) -> None:
        """Feed ``data``: a valid value or one of ``errors``; anything else propagates."""
        with contextlib.suppress(*self.errors):
            self.parse(data)


def _mode(data: bytes, count: int) -> tuple[int, bytes]:
    """The mode (first byte modulo ``count``) and the rest; mode 0 for empty input."""
    return (data[0] % count, data[1:]) if data else (0, b"")


def _text(data: bytes) -> str:
    """Bytes as text the way a transport hands them over (invalid UTF-8 replaced)."""
    return data.decode("utf-8", "replace")


def _signed(payload: bytes, signer: Signer) -> bytes:
    """A one-envelope batch carrying ``payload`` signed by ``signer``."""
    return encode_batch([signer.sign(payload)])


def _verified_one(batch: bytes, keys: Keys) -> Verified:
    (envelope,) = decode_batch(batch)
    return verify(envelope, keys)


# Protocol messages.


def parse_command(data: bytes) -> object:
    """Mode 0: the payload decoder. Mode 1: the hub's whole acceptance of a signed command."""
    mode, payload = _mode(data, 2)
    if mode == 0:
        return decode_command(payload)
    verified = _verified_one(_signed(payload, samples.CLOUD), samples.COMMAND_KEYS)
    command = accept_command(verified, hub_id=samples.HUB, now=samples.NOW)
    ReplayGuard().accept(verified.kid, command.seq)
    return command


def parse_record(data: bytes) -> object:
    """Mode 0: the payload decoder. Mode 1: the cloud's acceptance of a signed record."""
    mode, payload = _mode(data, 2)
    if mode == 0:
        return decode_record(payload)
    verified = _verified_one(_signed(payload, samples.HUB_SIGNER), samples.HUB_KEYS)
    record = accept_record(verified, hub_id=samples.HUB)
    verify_chain([verified.payload])
    return record


def parse_ack(data: bytes) -> object:
    """Mode 0: the payload decoder. Mode 1: the hub's acceptance of a signed ack."""
    mode, payload = _mode(data, 2)
    if mode == 0:
        return decode_ack(payload)
    verified = _verified_one(_signed(payload, samples.CLOUD), samples.COMMAND_KEYS)
    ack = accept_ack(verified, hub_id=samples.HUB)
    return ack.body.covers(1)


def parse_control(data: bytes) -> object:
    """``hub.hello`` (raw, and signed as the cloud accepts it) and the ``up/status`` JSON."""
    mode, payload = _mode(data, 3)
    if mode == 0:
        return decode_hello(payload)
    if mode == 1:
        return decode_status(payload)
    verified = _verified_one(_signed(payload, samples.HUB_SIGNER), samples.HUB_KEYS)
    return accept_hello(verified, hub_id=samples.HUB)


def parse_envelopes(data: bytes) -> object:
    """Mode 0: a batch, each envelope verified on its own as hub and cloud do. Mode 1: a topic."""
    mode, rest = _mode(data, 2)
    if mode == 1:
        return parse_topic(DEFAULT_PREFIX, _text(rest))
    keys = {**samples.COMMAND_KEYS, **samples.HUB_KEYS}
    verified = []
    for envelope in decode_batch(rest):
        with contextlib.suppress(ProtocolError):
            verified.append(verify(envelope, keys))
    return verified


def _signed_token(protected: str, claims: bytes) -> str:
    return ".".join(sign_parts(protected, claims, samples.CLOUD_KEY))


_TOKEN_HEADER = b64url_encode(
    jsoncodec.dumps({"alg": "Ed25519", "kid": samples.CLOUD_KID, "typ": COURIER_TYP})
)


def parse_token(data: bytes) -> object:
    """Courier tokens: any text; any claims under a valid signature; any header, signed."""
    mode, rest = _mode(data, 3)
    if mode == 0:
        token = _text(rest)
    elif mode == 1:
        token = _signed_token(_TOKEN_HEADER, rest)
    else:
        token = _signed_token(b64url_encode(rest), samples.token_claims_json())
    verified = verify_courier_token(token, samples.COMMAND_KEYS, hub_id=samples.HUB)
    check_token_time(verified.claims, samples.NOW, TOKEN_LEEWAY_SECONDS)
    return verified


def parse_sealed_code(data: bytes) -> object:
    """HPKE sealed codes: any text; any plaintext sealed to the hub; any window id; codes."""
    mode, rest = _mode(data, 4)
    key = samples.SEALING_KEY
    if mode == 0:
        return open_code(_text(rest), samples.WINDOW, key)
    if mode == 3:
        return check_code(_text(rest))
    if mode == 1:
        info = INFO_PREFIX + samples.WINDOW.encode()
        sealed = b64url_encode(SUITE.encrypt(rest, key.public_key(), info=info))
        return open_code(sealed, samples.WINDOW, key)
    return open_code(samples.SEALED, _text(rest), key)


# Lock-side wire formats.


def _keyturner_states(payload: bytes) -> object:
    states = keyturner.decode_keyturner_states(payload)
    return events.from_states(states, states, samples.LOCK, samples.NOW, bolt=True)


def _log_entry(payload: bytes) -> object:
    entry = keyturner.decode_log_entry(payload)
    return events.from_log(entry, samples.LOCK, own_auth_id=7, now=samples.NOW)


_NUKI_MESSAGES: dict[int, Parse] = {
    codec.Command.REQUEST_DATA: messages.decode_request_data,
    codec.Command.PUBLIC_KEY: messages.decode_key,
    codec.Command.CHALLENGE: messages.decode_challenge,
    codec.Command.AUTHORIZATION_DATA: messages.decode_authorization_data,
    codec.Command.AUTHORIZATION_ID: messages.decode_authorization_id,
    codec.Command.KEYTURNER_STATES: _keyturner_states,
    codec.Command.LOCK_ACTION: lambda p: keyturner.decode_lock_action(
        messages.split_challenge(p, pin=False)[0]
    ),
    codec.Command.STATUS: messages.decode_status,
    codec.Command.ERROR_REPORT: messages.decode_error_report,
    codec.Command.AUTHORIZATION_ID_CONFIRMATION: messages.decode_confirmation,
    codec.Command.REQUEST_LOG_ENTRIES: lambda p: keyturner.decode_log_request(
        messages.split_challenge(p, pin=True)[0]
    ),
    codec.Command.LOG_ENTRY: _log_entry,
    codec.Command.LOG_ENTRY_COUNT: keyturner.decode_log_entry_count,
    codec.Command.ADD_KEYPAD_CODE: keypad.decode_add,
    codec.Command.KEYPAD_CODE_ID: keypad.decode_code_id,
    codec.Command.REQUEST_KEYPAD_CODES: keypad.decode_list_request,
    codec.Command.KEYPAD_CODE_COUNT: keypad.decode_code_count,
    codec.Command.KEYPAD_CODE: keypad.decode_entry,
    codec.Command.UPDATE_KEYPAD_CODE: keypad.decode_update,
    codec.Command.REMOVE_KEYPAD_CODE: keypad.decode_remove_request,
}


def _nuki_message(command: int, payload: bytes) -> object:
    parse = _NUKI_MESSAGES.get(command)
    return None if parse is None else parse(payload)


def parse_nuki_frame(data: bytes) -> object:
    """Nuki BLE: plain frames, encrypted frames, messages inside valid encryption, reassembly."""
    mode, rest = _mode(data, 4)
    if mode == 0:
        command, payload = codec.decode_plain(rest)
        return _nuki_message(command, payload)
    if mode == 1:
        message = codec.decode_encrypted(samples.NUKI_KEY, rest)
        return _nuki_message(message.command, message.payload)
    if mode == 2:
        command = struct.unpack("<H", rest[:2].ljust(2, b"\0"))[0]
        nonce = bytes(codec.NONCE_BYTES)
        frame = codec.encode_encrypted(samples.NUKI_KEY, nonce, 7, command, rest[2:])
        message = codec.decode_encrypted(samples.NUKI_KEY, frame)
        return _nuki_message(message.command, message.payload)
    encrypted = bool(rest[:1]) and rest[0] & 1 == 1
    reassembler = codec.Reassembler(encrypted=encrypted)
    return [frame for piece in codec.chunks(rest[1:]) for frame in reassembler.feed(piece)]


_BRIDGE_PARSERS: list[Parse] = [
    bridge.parse_list,
    bridge.parse_lock_state,
    bridge.parse_outcome,
    bridge.parse_callback_list,
    bridge.parse_info,
    bridge.parse_auth,
    bridge.parse_callback,
]


def parse_bridge(data: bytes) -> object:
    """Nuki Bridge replies and callback bodies; the bridge-side token checks."""
    mode, rest = _mode(data, len(_BRIDGE_PARSERS) + 2)
    if mode < len(_BRIDGE_PARSERS):
        return _BRIDGE_PARSERS[mode](rest)
    parts = [*_text(rest).split(",", 3), "", "", "", ""][:4]
    if mode == len(_BRIDGE_PARSERS):
        return bridge.check_hashed("token", parts[0], parts[1], parts[2])
    return bridge.check_encrypted("token", parts[0], parts[1])


# Local API and config files.


class _Content:
    """The part of aiohttp's StreamReader that ``read_body`` uses, over fixed bytes."""

    def __init__(self, data: bytes, piece: int) -> None:
        self._data = data
        self._piece = piece

    async def read(self, n: int = -1) -> bytes:
        size = min(n, self._piece) if n >= 0 else self._piece
        chunk, self._data = self._data[:size], self._data[size:]
        return chunk


class _Request:
    """A request carrying ``data`` as its body, with or without a Content-Length."""

    def __init__(self, data: bytes, declared: int | None, piece: int) -> None:
        self.content_length = declared
        self.content = _Content(data, piece)


def _run_now(coroutine: Any) -> Any:
    """Run a coroutine that never suspends (its I/O is in memory) without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the body reader suspended")


def parse_unlock_body(data: bytes) -> object:
    """The unlock endpoint's body: read within the limit, strict JSON, one code or token."""
    mode, rest = _mode(data, 3)
    declared = (None, len(rest), max(0, len(rest) - 1))[mode]
    request = cast(web.Request, _Request(rest, declared, piece=1 + len(rest) // 3))
    code, token = _credential(_run_now(read_json(request, MAX_UNLOCK_BODY)))
    if (code is None) == (token is None):
        raise RuntimeError("the body gave both or neither of code and token")
    return well_formed(code) if code is not None else token


# Env overrides a fuzzed value may land in (one per section, of each kind of field).
_HUB_ENV = (
    "HUB__ID",
    "HUB__STATE_DIR",
    "MQTT__URL",
    "MQTT__KEEPALIVE",
    "API__LISTEN",
    "ACCESS__GRACE_SECONDS",
    "ACCESS__LOCKOUT_BASE_SECONDS",
    "SYNC__OUTBOX_ALERT_FRACTION",
    "LOCKS__ID",
    "CLOUD__COMMAND_KEYS",
)


def parse_hub_config(data: bytes) -> object:
    """Hub TOML (and one env override) into GatewayConfig, and what the daemon derives from it."""
    mode, rest = _mode(data, 2)
    env: dict[str, str] = {}
    if mode == 1:
        key, value = _mode(rest, len(_HUB_ENV))
        env = {ENV_PREFIX + _HUB_ENV[key]: _text(value).replace("\0", "")}
        rest = samples.hub_configs()[1]
    config = parse_config(
        rest, "hub.toml", GatewayConfig, env=env, env_prefix=ENV_PREFIX, base_dir=CONFIG_DIR
    )
    # A valid value is usable as is: none of these may raise.
    return config.cloud.public_keys(), lockout_policy(config), config.sync.settings()


def parse_cloud_config(data: bytes) -> object:
    """Cloud TOML into CloudConfig."""
    return parse_config(
        data, "cloud.toml", CloudConfig, env={}, env_prefix="LOCKHUB_CLOUD_", base_dir=CONFIG_DIR
    )


def _prefixed(mode: int, inputs: Sequence[bytes | str]) -> list[bytes]:
    return [bytes([mode]) + (i.encode() if isinstance(i, str) else i) for i in inputs]


def _each_mode(modes: int, inputs: Sequence[bytes | str]) -> list[bytes]:
    return [seed for mode in range(modes) for seed in _prefixed(mode, inputs)]


def _token_seeds() -> list[bytes]:
    header = b64url_decode(_TOKEN_HEADER)
    return [
        *_prefixed(0, samples.tokens()),
        *_prefixed(1, [samples.token_claims_json()]),
        *_prefixed(2, [header]),
    ]


def _sealed_seeds() -> list[bytes]:
    return [
        *_prefixed(0, [samples.SEALED, "123456"]),
        *_prefixed(1, [b"123456", b"abcdefghijklmnop"]),
        *_prefixed(2, [samples.WINDOW]),
        *_prefixed(3, ["123456", "abcdefghijklmnop"]),
    ]


def _bridge_seeds() -> list[bytes]:
    replies = samples.bridge_replies()
    seeds = [bytes([mode]) + reply for mode, reply in enumerate(replies)]
    hashed = bridge.token_params(
        bridge.AuthMode.HASHED, "token", now=samples.NOW, rnr=7, nonce=bytes(24)
    )
    sealed = bridge.token_params(
        bridge.AuthMode.ENCRYPTED, "token", now=samples.NOW, rnr=7, nonce=bytes(24)
    )
    seeds.append(
        bytes([len(replies)]) + f"{hashed['ts']},{hashed['rnr']},{hashed['hash']}".encode()
    )
    seeds.append(bytes([len(replies) + 1]) + f"{sealed['ctoken']},{sealed['nonce']}".encode())
    return seeds


def _nuki_seeds() -> list[bytes]:
    frames = samples.nuki_frames()
    plain = [f for f in frames if len(f) < codec.HEADER_BYTES]
    inner = [struct.pack("<H", c) + bytes(n) for c, n in samples.NUKI_PAYLOAD_BYTES.items()]
    return [
        *_prefixed(0, plain),
        *_prefixed(1, frames),
        *_prefixed(2, inner),
        *_prefixed(3, [b"\1" + f for f in frames[-4:]] + [b"\0" + f for f in plain]),
    ]


def _env_seeds() -> list[bytes]:
    values = ["hub-2", "/var/lib/x", "mqtts://broker:8883", "30", "127.0.0.1:9000", "60", "1.5"]
    return [bytes([1, key]) + value.encode() for key, value in enumerate(values)]


TARGETS: dict[str, Target] = {
    target.name: target
    for target in [
        Target(
            "commands", parse_command, (ProtocolError,), lambda: _each_mode(2, samples.commands())
        ),
        Target("records", parse_record, (ProtocolError,), lambda: _each_mode(2, samples.records())),
        Target("acks", parse_ack, (ProtocolError,), lambda: _each_mode(2, samples.acks())),
        Target(
            "control",
            parse_control,
            (ProtocolError,),
            lambda: [
                *_prefixed(0, samples.hellos()),
                *_prefixed(1, samples.statuses()),
                *_prefixed(2, samples.hellos()),
            ],
        ),
        Target(
            "envelopes",
            parse_envelopes,
            (ProtocolError,),
            lambda: [
                *_prefixed(0, samples.batches()),
                *_prefixed(1, ["lockhub/v1/hubs/h-1/up/records"]),
            ],
        ),
        Target("tokens", parse_token, (ProtocolError,), _token_seeds),
        Target("sealed_codes", parse_sealed_code, (ProtocolError,), _sealed_seeds),
        Target("nuki_ble", parse_nuki_frame, (NukiFrameError,), _nuki_seeds),
        Target("nuki_bridge", parse_bridge, (NukiBridgeError,), _bridge_seeds),
        Target(
            "unlock_body",
            parse_unlock_body,
            (web.HTTPBadRequest, web.HTTPRequestEntityTooLarge),
            lambda: _each_mode(3, samples.unlock_bodies()),
        ),
        Target(
            "hub_config",
            parse_hub_config,
            (ConfigFileError,),
            lambda: [*_prefixed(0, samples.hub_configs()), *_env_seeds()],
        ),
        Target("cloud_config", parse_cloud_config, (ConfigFileError,), samples.cloud_configs),
    ]
}
