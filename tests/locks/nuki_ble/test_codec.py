"""Parsers return a value or raise NukiFrameError for any input; pairing and options faults."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import ConfigError
from gateway.locks import LockRefusedError
from gateway.locks.ble.fake import FakeAir
from gateway.locks.ble.nuki import codec, keypad, keyturner, messages
from gateway.locks.ble.nuki.driver import build, pair
from gateway.locks.ble.nuki.emulator import NukiEmulator
from gateway.locks.ble.nuki.errors import NukiFrameError, NukiPairingNeededError
from gateway.testing import FakeClock

from .conftest import ScriptedUI, context_for, new_transport, section

KEY = os.urandom(32)
PARSERS: list[Callable[[bytes], object]] = [
    codec.decode_plain,
    lambda b: codec.decode_encrypted(KEY, b),
    messages.decode_error_report,
    messages.decode_authorization_data,
    messages.decode_authorization_id,
    keyturner.decode_keyturner_states,
    keyturner.decode_log_entry,
    keyturner.decode_lock_action,
    keypad.decode_entry,
    keypad.decode_add,
    keypad.decode_update,
    lambda b: codec.Reassembler(encrypted=False).feed(b),
    lambda b: codec.Reassembler(encrypted=True).feed(b),
]


@pytest.mark.parametrize("parse", PARSERS)
@given(data=st.binary(max_size=160))
def test_parsers_raise_only_their_own_error(parse: Callable[[bytes], object], data: bytes) -> None:
    with contextlib.suppress(NukiFrameError):
        parse(data)


def test_encrypted_frames_round_trip_and_reject_tampering() -> None:
    frame = codec.encode_encrypted(KEY, os.urandom(24), 7, 0x000C, b"state")
    message = codec.decode_encrypted(KEY, frame)
    assert (message.auth_id, message.command, message.payload) == (7, 0x000C, b"state")
    with pytest.raises(NukiFrameError):
        codec.decode_encrypted(KEY, frame[:-1] + bytes([frame[-1] ^ 1]))
    pieces = codec.chunks(frame)
    reassembler = codec.Reassembler(encrypted=True)
    assert [f for p in pieces for f in reassembler.feed(p)] == [frame]


async def test_pairing_outside_pairing_mode_is_refused(
    air: FakeAir, lock: NukiEmulator, clock: FakeClock, tmp_path: Path
) -> None:
    transport = await new_transport(air)
    ui = ScriptedUI()
    with pytest.raises(LockRefusedError, match="not in pairing mode"):
        await pair(section(), context_for(transport, clock, tmp_path), ui)
    assert lock.authorizations == {}
    await transport.stop()


async def test_pairing_stores_credentials_encrypted(
    air: FakeAir, lock: NukiEmulator, clock: FakeClock, tmp_path: Path
) -> None:
    transport = await new_transport(air)
    lock.set_pairing_mode(True)
    context = context_for(transport, clock, tmp_path)
    summary = await pair(section(), context, ScriptedUI())
    assert "authorization 2" in summary
    stored = context.credentials().load("front-door", "nuki_ble")
    assert stored is not None
    assert bytes.fromhex(stored["shared_key"]) == lock.authorizations[2].shared_key
    raw = (tmp_path / "credentials" / "front-door.nuki_ble.cred").read_bytes()
    assert stored["shared_key"].encode() not in raw
    assert not lock.pairing_mode
    await transport.stop()


async def test_unpaired_lock_does_not_start(air: FakeAir, clock: FakeClock, tmp_path: Path) -> None:
    transport = await new_transport(air)
    driver = build(section(), context_for(transport, clock, tmp_path))
    with pytest.raises(NukiPairingNeededError, match="not paired"):
        await driver.start()
    await transport.stop()


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"address": "nope"}, "options.address"),
        ({"colour": "red"}, "unknown option"),
        ({"security_pin_file": "/nonexistent/pin"}, "cannot read"),
    ],
)
async def test_bad_options_name_the_field(
    air: FakeAir, clock: FakeClock, tmp_path: Path, options: dict[str, object], problem: str
) -> None:
    transport = await new_transport(air)
    with pytest.raises(ConfigError, match=problem):
        build(section(**options), context_for(transport, clock, tmp_path))
    await transport.stop()


@pytest.mark.parametrize(
    ("content", "problem"), [(("1234", 0o644), "readable by others"), (("12ab", 0o600), "digits")]
)
async def test_pin_file_must_be_private_digits(
    air: FakeAir, clock: FakeClock, tmp_path: Path, content: tuple[str, int], problem: str
) -> None:
    path = tmp_path / "pin"
    path.write_text(content[0])
    path.chmod(content[1])
    transport = await new_transport(air)
    with pytest.raises(ConfigError, match=problem):
        build(section(security_pin_file=str(path)), context_for(transport, clock, tmp_path))
    await transport.stop()
