"""A Yale / August lock on the fake bleak backend, speaking the lock side of its BLE protocol.

The protocol is the one yalexs-ble speaks as the client (read from its source; there is no
public specification). Every frame is 18 bytes: one 16-byte AES block and two plain trailing
bytes. A *secure* channel (characteristics ...613 write / ...614 notify, AES-ECB) carries the
handshake under the offline key of a slot; it yields a session key (8 random bytes from each
side) under which a *main* channel (...611 / ...612, AES-CBC with a zero IV, one running chain
per direction for the life of the link) carries commands (``EE``) and answers (``AA`` acks,
``BB`` results). Secure frames carry a 32-bit checksum at 12..15, main frames an 8-bit one at
byte 3. The advertisement carries one byte under the Yale company id that flips on each state
change, which makes a listening client connect and look.

The emulator answers yalexs-ble unmodified: the handshake, status / door / battery polls, the
auto-lock setting, lock / unlock with ack and op-response, keypad codes (clear, set, access,
commit, get) and the activity log. Physical actions (keypad, thumb turn, door) and faults
(jam, a drop mid-command, silence) are test knobs.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bleak.exc import BleakError
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from .fake import FakePeripheral

SERVICE = "0000fe24-0000-1000-8000-00805f9b34fb"
WRITE = "bd4ac611-0b45-11e3-8ffd-0800200c9a66"
READ = "bd4ac612-0b45-11e3-8ffd-0800200c9a66"
SECURE_WRITE = "bd4ac613-0b45-11e3-8ffd-0800200c9a66"
SECURE_READ = "bd4ac614-0b45-11e3-8ffd-0800200c9a66"
DEVICE_INFO = "0000180a-0000-1000-8000-00805f9b34fb"
MODEL = "00002a24-0000-1000-8000-00805f9b34fb"
SERIAL = "00002a25-0000-1000-8000-00805f9b34fb"
FIRMWARE = "00002a26-0000-1000-8000-00805f9b34fb"
YALE_COMPANY_ID = 465
FRAME = 18
# What BlueZ reports when the lock rejects a write (ATT 0x0e): the lock's answer to a wrong key.
REJECTED = "[org.bluez.Error.Failed] Operation failed with ATT error: 0x0e (Unlikely Error)"

# Secure-channel opcodes (byte 0) and their answers.
SEC_KEY_EXCHANGE, SEC_KEY_EXCHANGE_OK = 0x01, 0x02
SEC_INIT, SEC_INIT_OK = 0x03, 0x04
SEC_DISCONNECT, SEC_DISCONNECT_OK = 0x05, 0x8B
# Main-channel opcodes (byte 1).
GET_STATUS, WRITE_SETTING, READ_SETTING = 0x02, 0x03, 0x04
UNLOCK, LOCK = 0x0A, 0x0B
CODE_SET, CODE_CLEAR, CODE_ACCESS, CODE_COMMIT, CODE_GET = 0x27, 0x28, 0x2B, 0x2C, 0x39
ACTIVITY = 0x2D
# GET_STATUS kinds (byte 4), the auto-lock setting id, lock and door status values.
ST_LOCK, ST_DOOR, ST_DOOR_AND_LOCK, ST_BATTERY = 0x02, 0x2E, 0x2F, 0x0F
SETTING_AUTOLOCK = 0x28
UNLOCKED, LOCKED, JAMMED = 0x03, 0x05, 0x07
DOOR_CLOSED, DOOR_OPEN = 0x01, 0x03
# Results in byte 15 of a BB frame.
OK, EXISTING_KEY, NO_SPACE, MECH_TIMEOUT, INVALID_MSG = 0x00, 0x06, 0x07, 0x1E, 0x3A
# Activity records (byte 4 of an ACTIVITY answer).
REC_LOCK, REC_KEYPAD_UNLOCK, REC_NONE = 0x00, 0x07, 0x80
SOURCE_REMOTE, SOURCE_MANUAL = 0x00, 0x01
REMOTE_BLE = 0x03
PIN_BYTES = 7
# An activity record fills a BB frame from byte 4 to the end.
RECORD_BYTES = FRAME - 4


# --- pure codec ------------------------------------------------------------------------------


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")


def security_checksum(frame: bytes) -> int:
    """The secure-channel checksum: minus the sum of the little-endian words at 0, 4 and 8."""
    return -(_u32(frame, 0) + _u32(frame, 4) + _u32(frame, 8)) & 0xFFFFFFFF


def simple_checksum(frame: bytes) -> int:
    """The main-channel checksum byte: what makes the 18 bytes sum to zero (mod 256)."""
    return -sum(frame[:FRAME]) & 0xFF


def secure_plain(opcode: int, payload: bytes, trailer: bytes = b"\x00\x00") -> bytes:
    """A secure-channel frame before encryption: opcode, 8 payload bytes, checksum, trailer."""
    frame = bytearray(FRAME)
    frame[0] = opcode
    frame[4:12] = payload[:8].ljust(8, b"\x00")
    frame[12:16] = security_checksum(bytes(frame)).to_bytes(4, "little")
    frame[16:18] = trailer
    return bytes(frame)


def main_plain(flag: int, opcode: int, fields: dict[int, bytes]) -> bytes:
    """A main-channel frame before encryption: flag, opcode, fields at offsets, checksum."""
    frame = bytearray(FRAME)
    frame[0], frame[1] = flag, opcode
    for offset, value in fields.items():
        frame[offset : offset + len(value)] = value
    frame[3] = 0
    frame[3] = simple_checksum(bytes(frame))
    return bytes(frame)


def encode_pin(pin: str) -> bytes:
    """A PIN as the lock stores it: BCD digits, padded with 0xF nibbles to 7 bytes."""
    return bytes.fromhex(pin.ljust(PIN_BYTES * 2, "f"))


def decode_pin(data: bytes) -> str:
    """The digits of a BCD PIN field ("" for a blank one)."""
    return data[:PIN_BYTES].hex().rstrip("f")


def _ecb(key: bytes) -> Cipher[modes.ECB]:
    return Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 - the lock's secure channel is ECB


def _cbc(key: bytes) -> Cipher[modes.CBC]:
    return Cipher(algorithms.AES(key), modes.CBC(bytes(16)))


def _seal(context: CipherContext, plain: bytes) -> bytes:
    return context.update(plain[:16]) + plain[16:FRAME]


def _open(context: CipherContext, sealed: bytes) -> bytes:
    return context.update(sealed[:16]) + sealed[16:FRAME]


# --- the lock --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Link:
    """Crypto state of one connection: the secure key, then the main channel's two chains."""

    secure_key: bytes | None = None
    slot: int | None = None
    lock_half: bytes = b""
    session_key: bytes | None = None
    encrypt: CipherContext | None = None
    decrypt: CipherContext | None = None
    # The central subscribes to the main channel's notifications after the handshake and
    # before its first command: only from then on does a pushed frame reach it.
    listening: bool = False


@dataclass(slots=True)
class Received:
    """One decoded command the lock accepted (for test assertions)."""

    opcode: int
    kind: int
    slot: int | None = None


@dataclass(slots=True)
class _Faults:
    """Fault knobs: the next lock/unlock result (MECH_TIMEOUT: a jam), drops, silence."""

    fail_next: int | None = None
    code_result: int | None = None
    drop_before_ack: set[int] = field(default_factory=set)
    drop_after_ack: set[int] = field(default_factory=set)
    silent: bool = False


class YaleLockEmulator(FakePeripheral):
    """A Yale / August lock with offline keys per slot, a keypad, a door sensor and a log."""

    def __init__(
        self,
        address: str,
        serial: str,
        keys: dict[int, str],
        *,
        model: str = "ASL-03",
        firmware: str = "2.0.11",
        battery_mv: int = 6000,
        keypad_capacity: int = 20,
        now: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(address, serial[:2] + serial[-5:])
        self.serial = serial
        self.model = model
        self.firmware = firmware
        self.keys = {slot: bytes.fromhex(key) for slot, key in keys.items()}
        self.battery_mv = battery_mv
        self.keypad_capacity = keypad_capacity
        self.bolt = LOCKED
        self.door = DOOR_CLOSED
        self.auto_lock = 0
        self.codes: dict[int, str] = {}
        self.motor_runs = 0
        self.received: list[Received] = []
        self.faults = _Faults()
        self._now = now
        self._activity: deque[bytes] = deque()
        self._pending_pin: str | None = None
        self._toggle = 0
        self._session = _Link()
        self.services = {
            SERVICE: {WRITE: ["write"], READ: ["notify"], SECURE_WRITE: ["write"]}
            | {SECURE_READ: ["notify"]},
            DEVICE_INFO: {MODEL: ["read"], SERIAL: ["read"], FIRMWARE: ["read"]},
        }
        self.manufacturer_data = {YALE_COMPANY_ID: bytes([self._toggle])}

    # -- physical world ------------------------------------------------------------------

    def keypad(self, pin: str) -> bool:
        """Type ``pin`` on the keypad; True (and the bolt unlocks) when a slot holds it."""
        slot = next((s for s, code in self.codes.items() if code == pin), None)
        if slot is None:
            return False
        if self.bolt != UNLOCKED:
            self.bolt = UNLOCKED
            self.motor_runs += 1
        body = bytearray(RECORD_BYTES)
        body[0], body[1:5] = REC_KEYPAD_UNLOCK, self._timestamp()
        body[10:12] = slot.to_bytes(2, "little")  # frame bytes 14-15
        self._activity.append(bytes(body))
        self.changed()
        return True

    def turn_thumb(self, unlock: bool) -> None:
        """Move the bolt by hand."""
        self._move(UNLOCKED if unlock else LOCKED, SOURCE_MANUAL, 0)
        self.changed()

    def set_door(self, open_: bool) -> None:
        """Open or close the door (the door sensor reports it)."""
        self.door = DOOR_OPEN if open_ else DOOR_CLOSED
        self.changed()

    def changed(self) -> None:
        """Tell the world: push the state on an open link and flip the advertised byte."""
        # A frame pushed before the central listens would be lost yet advance this side's CBC
        # chain alone, and every later frame on the link would then fail its checksum.
        if self._session.listening:
            self._push(0xBB, GET_STATUS, {4: bytes([ST_LOCK]), 8: bytes([self.bolt])})
            self._push(0xBB, GET_STATUS, {4: bytes([ST_DOOR]), 8: bytes([self.door])})
        self._toggle ^= 1
        self.manufacturer_data = {YALE_COMPANY_ID: bytes([self._toggle])}
        self.advertise()

    # -- GATT ------------------------------------------------------------------------------

    def on_connect(self) -> None:
        self._session = _Link()

    def on_disconnect(self) -> None:
        self._session = _Link()

    async def handle_read(self, char_uuid: str) -> bytes:
        values = {MODEL: self.model, SERIAL: self.serial, FIRMWARE: self.firmware}
        if char_uuid not in values:
            return await super().handle_read(char_uuid)
        return values[char_uuid].encode() + b"\x00"

    async def handle_write(self, char_uuid: str, data: bytes) -> None:
        if len(data) != FRAME:
            raise BleakError(REJECTED)
        if char_uuid == SECURE_WRITE:
            self._secure(data)
        elif char_uuid == WRITE:
            self._command(data)

    # -- secure channel ------------------------------------------------------------------

    def _secure(self, sealed: bytes) -> None:
        link = self._session
        key = link.secure_key if link.secure_key is not None else self.keys.get(sealed[17])
        if key is None:
            raise BleakError(REJECTED)
        plain = _open(_ecb(key).decryptor(), sealed)
        if security_checksum(plain) != _u32(plain, 12):
            raise BleakError(REJECTED)  # wrong offline key for this slot
        opcode = plain[0]
        if opcode == SEC_KEY_EXCHANGE and link.session_key is None:
            link.slot, link.lock_half = sealed[17], os.urandom(8)
            link.secure_key = plain[4:12] + link.lock_half
            reply = secure_plain(SEC_KEY_EXCHANGE_OK, link.lock_half)
            self.notify(SECURE_READ, _seal(_ecb(key).encryptor(), reply))
        elif opcode == SEC_INIT and link.secure_key is not None and link.session_key is None:
            link.session_key = link.secure_key
            link.encrypt = _cbc(link.session_key).encryptor()
            link.decrypt = _cbc(link.session_key).decryptor()
            reply = secure_plain(SEC_INIT_OK, b"")
            self.notify(SECURE_READ, _seal(_ecb(link.secure_key).encryptor(), reply))
        elif opcode == SEC_DISCONNECT and link.secure_key is not None:
            reply = secure_plain(SEC_DISCONNECT_OK, b"")
            self.notify(SECURE_READ, _seal(_ecb(link.secure_key).encryptor(), reply))
        else:
            raise BleakError(REJECTED)

    # -- main channel --------------------------------------------------------------------

    def _push(self, flag: int, opcode: int, fields: dict[int, bytes]) -> None:
        if self._session.encrypt is not None:
            self.notify(READ, _seal(self._session.encrypt, main_plain(flag, opcode, fields)))

    def _command(self, sealed: bytes) -> None:
        if self._session.decrypt is None:
            raise BleakError(REJECTED)
        self._session.listening = True
        plain = _open(self._session.decrypt, sealed)
        if simple_checksum(plain) != 0 or plain[0] != 0xEE:
            self._push(0xBB, plain[1], {15: bytes([INVALID_MSG])})
            return
        opcode = plain[1]
        self.received.append(Received(opcode, plain[4]))
        if self.faults.silent:
            return
        handler = _HANDLERS.get(opcode)
        if handler is None:
            self._push(0xBB, opcode, {15: bytes([INVALID_MSG])})
            return
        handler(self, plain)

    def _status(self, plain: bytes) -> None:
        kind = plain[4]
        values = {
            ST_LOCK: bytes([self.bolt]),
            ST_DOOR: bytes([self.door]),
            ST_DOOR_AND_LOCK: bytes([self.bolt, self.door]),
            ST_BATTERY: self.battery_mv.to_bytes(2, "little"),
        }
        self._push(0xBB, GET_STATUS, {4: bytes([kind]), 8: values.get(kind, b"\x00")})

    def _setting(self, plain: bytes) -> None:
        opcode, setting = plain[1], plain[4]
        if opcode == WRITE_SETTING and setting == SETTING_AUTOLOCK:
            self.auto_lock = _u32(plain, 8)
        self._push(0xAA, opcode, {4: bytes([setting])})
        value = self.auto_lock.to_bytes(4, "little")
        self._push(0xBB, opcode, {4: bytes([setting]), 8: value})

    def _operate(self, plain: bytes) -> None:
        opcode, operation = plain[1], plain[4]
        target = UNLOCKED if opcode == UNLOCK else LOCKED
        result, self.faults.fail_next = self.faults.fail_next or OK, None
        if result == MECH_TIMEOUT:
            self.bolt = JAMMED  # the motor ran and stalled
            self.motor_runs += 1
        elif result == OK:
            self._move(target, SOURCE_REMOTE, REMOTE_BLE)
        if opcode in self.faults.drop_before_ack:
            self.faults.drop_before_ack.discard(opcode)
            self._drop()
            return
        self._push(0xAA, opcode, {4: bytes([operation])})
        if opcode in self.faults.drop_after_ack:
            self.faults.drop_after_ack.discard(opcode)
            # After the ack is delivered (notifications go out in order on the next loop turns).
            asyncio.get_running_loop().call_soon(self._drop)
            return
        self._push(0xBB, opcode, {15: bytes([result])})

    def _move(self, target: int, source: int, remote: int) -> None:
        if self.bolt == target:
            return  # the bolt is there already: the motor does not run
        self.bolt = target
        self.motor_runs += 1
        body = bytes([REC_LOCK, source, target, remote]) + self._timestamp()
        self._activity.append(body.ljust(RECORD_BYTES, b"\x00"))

    def _code_clear(self, plain: bytes) -> None:
        self.codes.pop(plain[0x0B] | plain[0x0D] << 8, None)
        self._push(0xBB, CODE_CLEAR, {15: bytes([OK])})

    def _code_set(self, plain: bytes) -> None:
        pin = decode_pin(plain[4:11])
        if self.faults.code_result is not None:
            self._push(0xBB, CODE_SET, {15: bytes([self.faults.code_result])})
        elif pin in self.codes.values():
            self._push(0xBB, CODE_SET, {15: bytes([EXISTING_KEY])})
        elif len(self.codes) >= self.keypad_capacity:
            self._push(0xBB, CODE_SET, {15: bytes([NO_SPACE])})
        else:
            self._pending_pin = pin
            self._push(0xBB, CODE_SET, {15: bytes([OK])})

    def _code_access(self, plain: bytes) -> None:
        self._push(0xBB, CODE_ACCESS, {15: bytes([OK])})

    def _code_commit(self, plain: bytes) -> None:
        slot = plain[0x0B] | plain[0x0D] << 8
        if self._pending_pin is None or decode_pin(plain[4:11]) != self._pending_pin:
            self._push(0xBB, CODE_COMMIT, {15: bytes([INVALID_MSG])})
            return
        self.codes[slot] = self._pending_pin
        self._pending_pin = None
        self.received[-1].slot = slot
        self._push(0xBB, CODE_COMMIT, {15: bytes([OK])})

    def _code_get(self, plain: bytes) -> None:
        slot = int.from_bytes(plain[4:6], "little")
        pin = self.codes.get(slot)
        field_ = encode_pin(pin) if pin else b"\xff" * PIN_BYTES
        self._push(0xBB, CODE_GET, {4: slot.to_bytes(2, "little"), 6: field_, 15: bytes([OK])})

    def _activity_read(self, plain: bytes) -> None:
        record = self._activity.popleft() if self._activity else None
        if record is None:
            self._push(0xBB, ACTIVITY, {4: bytes([REC_NONE])})
        else:
            self._push(0xBB, ACTIVITY, {4: record})

    def _timestamp(self) -> bytes:
        return int(self._now()).to_bytes(4, "little")

    def _drop(self) -> None:
        if self._air is not None:
            self._air.drop(self.address)


_HANDLERS: dict[int, Callable[[YaleLockEmulator, bytes], None]] = {
    GET_STATUS: YaleLockEmulator._status,
    READ_SETTING: YaleLockEmulator._setting,
    WRITE_SETTING: YaleLockEmulator._setting,
    UNLOCK: YaleLockEmulator._operate,
    LOCK: YaleLockEmulator._operate,
    CODE_CLEAR: YaleLockEmulator._code_clear,
    CODE_SET: YaleLockEmulator._code_set,
    CODE_ACCESS: YaleLockEmulator._code_access,
    CODE_COMMIT: YaleLockEmulator._code_commit,
    CODE_GET: YaleLockEmulator._code_get,
    ACTIVITY: YaleLockEmulator._activity_read,
}
