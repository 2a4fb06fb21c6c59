"""The emulator's own edges: what it does with frames yalexs-ble never sends, and its codec."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from bleak import BleakClient
from bleak.exc import BleakError
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from yalexs_ble import AutoLockMode
from yalexs_ble.lock import Lock

from gateway.locks.ble import yale_emulator as wire
from gateway.locks.ble.fake import FakeAir
from gateway.locks.ble.yale_emulator import YaleLockEmulator

from .conftest import KEY, SERIAL, SLOT


class Central:
    """A bare central doing the handshake by hand, to send frames yalexs-ble would not."""

    def __init__(self, air: FakeAir, emulator: YaleLockEmulator) -> None:
        self.client = BleakClient(air.device(emulator.address), backend=air.client_backend)
        self.secure: asyncio.Queue[bytes] = asyncio.Queue()
        self.main: asyncio.Queue[bytes] = asyncio.Queue()

    async def open(self, *, before_listening: Callable[[], object] = lambda: None) -> None:
        """The handshake in yalexs-ble's order: main-channel notifications come on after it."""
        await self.client.connect()
        await self.client.start_notify(
            wire.SECURE_READ, lambda _c, d: self.secure.put_nowait(bytes(d))
        )
        offline = Cipher(algorithms.AES(bytes.fromhex(KEY)), modes.ECB())  # noqa: S305
        mine = bytes(range(16))
        frame = wire.secure_plain(wire.SEC_KEY_EXCHANGE, mine[:8], bytes([0x0F, SLOT]))
        answer = await self._secure(offline, frame)
        assert answer[0] == wire.SEC_KEY_EXCHANGE_OK
        session = mine[:8] + answer[4:12]
        self.session = Cipher(algorithms.AES(session), modes.ECB())  # noqa: S305
        frame = wire.secure_plain(wire.SEC_INIT, mine[8:], bytes([0x0F, SLOT]))
        assert (await self._secure(self.session, frame))[0] == wire.SEC_INIT_OK
        self.encrypt = Cipher(algorithms.AES(session), modes.CBC(bytes(16))).encryptor()
        self.decrypt = Cipher(algorithms.AES(session), modes.CBC(bytes(16))).decryptor()
        before_listening()
        await self.client.start_notify(wire.READ, lambda _c, d: self.main.put_nowait(bytes(d)))

    async def _secure(self, cipher: Cipher[modes.ECB], frame: bytes) -> bytes:
        sealed = cipher.encryptor().update(frame[:16]) + frame[16:]
        await self.client.write_gatt_char(wire.SECURE_WRITE, sealed, response=True)
        answer = await asyncio.wait_for(self.secure.get(), 1)
        return cipher.decryptor().update(bytes(answer[:16])) + bytes(answer[16:])

    async def command(self, frame: bytes) -> bytes:
        """Send one main-channel frame (already checksummed or not) and return the answer."""
        sealed = self.encrypt.update(frame[:16]) + frame[16:]
        await self.client.write_gatt_char(wire.WRITE, sealed, response=True)
        return await self.pushed()

    async def pushed(self) -> bytes:
        """The next main-channel frame from the lock, decrypted."""
        answer = await asyncio.wait_for(self.main.get(), 1)
        return self.decrypt.update(bytes(answer[:16])) + bytes(answer[16:])


def command(opcode: int, fields: dict[int, bytes] | None = None) -> bytes:
    frame = bytearray(wire.main_plain(0xEE, opcode, fields or {}))
    frame[16] = 0x02
    frame[3] = 0
    frame[3] = wire.simple_checksum(bytes(frame))
    return bytes(frame)


async def test_frames_yalexs_ble_never_sends(air: FakeAir, emulator: YaleLockEmulator) -> None:
    central = Central(air, emulator)
    await central.open()
    bad = bytearray(command(wire.GET_STATUS, {4: bytes([wire.ST_LOCK])}))
    bad[3] ^= 0xFF  # a broken checksum
    assert (await central.command(bytes(bad)))[15] == wire.INVALID_MSG
    assert (await central.command(command(0x7F)))[15] == wire.INVALID_MSG  # unknown opcode
    pin = wire.encode_pin("1234")
    commit = command(wire.CODE_COMMIT, {4: pin, 0x0B: b"\x05"})
    assert (await central.command(commit))[15] == wire.INVALID_MSG  # no code was set first
    both = await central.command(command(wire.GET_STATUS, {4: bytes([wire.ST_DOOR_AND_LOCK])}))
    assert both[8:10] == bytes([wire.LOCKED, wire.DOOR_CLOSED])
    with pytest.raises(BleakError, match="Unlikely Error"):  # a second key exchange
        await central._secure(central.session, wire.secure_plain(wire.SEC_KEY_EXCHANGE, b""))
    with pytest.raises(BleakError, match="Unlikely Error"):
        await central.client.write_gatt_char(wire.WRITE, b"\x00" * 5, response=True)
    with pytest.raises(BleakError, match="not readable"):
        await central.client.read_gatt_char(wire.READ)
    await central.client.disconnect()


async def test_a_change_during_the_handshake_keeps_the_link_in_step(
    air: FakeAir, emulator: YaleLockEmulator
) -> None:
    # The door opens after the session is set up but before the central listens on the main
    # channel: nothing is pushed then (the CBC chains stay in step), the advertisement flips.
    central = Central(air, emulator)
    toggle = emulator.manufacturer_data[wire.YALE_COMPANY_ID]
    await central.open(before_listening=lambda: emulator.set_door(open_=True))
    assert emulator.manufacturer_data[wire.YALE_COMPANY_ID] != toggle
    answer = await central.command(command(wire.GET_STATUS, {4: bytes([wire.ST_DOOR])}))
    assert wire.simple_checksum(answer) == 0
    assert answer[8] == wire.DOOR_OPEN
    # Once the central has spoken on the main channel, changes are pushed to it.
    emulator.turn_thumb(unlock=True)
    bolt, door = await central.pushed(), await central.pushed()
    assert (bolt[4], bolt[8], door[4], door[8]) == (
        wire.ST_LOCK,
        wire.UNLOCKED,
        wire.ST_DOOR,
        wire.DOOR_OPEN,
    )
    await central.client.disconnect()


async def test_commands_before_the_handshake_or_with_an_unknown_slot(
    air: FakeAir, emulator: YaleLockEmulator
) -> None:
    client = BleakClient(air.device(emulator.address), backend=air.client_backend)
    await client.connect()
    with pytest.raises(BleakError, match="Unlikely Error"):
        await client.write_gatt_char(wire.WRITE, command(wire.GET_STATUS), response=True)
    frame = wire.secure_plain(wire.SEC_KEY_EXCHANGE, b"12345678", bytes([0x0F, 9]))
    with pytest.raises(BleakError, match="Unlikely Error"):
        await client.write_gatt_char(wire.SECURE_WRITE, frame, response=True)
    await client.disconnect()


async def test_yalexs_ble_sets_auto_lock_and_reads_codes(
    air: FakeAir, emulator: YaleLockEmulator
) -> None:
    states: list[object] = []
    lock = Lock(lambda: air.device(emulator.address), KEY, SLOT, "front", states.append)
    await lock.connect()
    await lock.set_auto_lock(AutoLockMode.TIMER, 30)
    assert emulator.auto_lock == 30 | 30 << 16
    emulator.codes[3] = "0042"
    assert await lock.get_keycode(3) == "0042"
    assert await lock.get_keycode(4) is None
    emulator.bolt = wire.UNLOCKED
    assert emulator.keypad("0042")  # already unlocked: the motor does not run
    assert emulator.motor_runs == 0
    assert not emulator.keypad("9999")
    await lock.disconnect()
    assert not emulator.connected


@settings(max_examples=200, deadline=None)
@given(
    char=st.sampled_from([wire.WRITE, wire.SECURE_WRITE, wire.READ]),
    data=st.binary(min_size=0, max_size=24),
)
async def test_any_write_is_answered_or_rejected_never_crashes(char: str, data: bytes) -> None:
    emulator = YaleLockEmulator("C0:FF:EE:99:00:01", SERIAL, {SLOT: KEY})
    error = ""
    try:
        await emulator.handle_write(char, data)
    except BleakError as exc:
        error = str(exc)
    assert not error or "Unlikely Error" in error


@given(pin=st.text(alphabet="0123456789", min_size=1, max_size=14))
def test_pins_round_trip(pin: str) -> None:
    assert wire.decode_pin(wire.encode_pin(pin)) == pin


@given(body=st.binary(min_size=18, max_size=18))
def test_checksums_close_their_frames(body: bytes) -> None:
    secure = wire.secure_plain(body[0], body[4:12])
    assert wire.security_checksum(secure) == int.from_bytes(secure[12:16], "little")
    assert wire.simple_checksum(wire.main_plain(0xBB, body[1], {4: body[4:16]})) == 0
