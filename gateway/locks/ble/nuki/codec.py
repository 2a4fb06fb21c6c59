"""Nuki Smart Lock BLE wire format: CRC, plain and encrypted frames, keys and reassembly.

Pure functions (and one small buffer class) with no I/O, after Nuki's Smart Lock API:
a plain frame is ``command (2, LE) | payload | CRC (2, LE)``; an encrypted one is
``nonce (24) | auth id (4, LE) | length (2, LE) | secretbox(auth id | command | payload | CRC)``.
The lock indicates long messages in 20-byte pieces; :class:`Reassembler` joins them.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from enum import IntEnum

from nacl.bindings import (
    crypto_box_beforenm,
    crypto_scalarmult_base,
    crypto_secretbox,
    crypto_secretbox_open,
)
from nacl.exceptions import CryptoError

from .errors import NukiFrameError

# GATT layout of the Smart Lock (Nuki's "Bluetooth GATT services" page).
BASE_UUID = "-5501-11e4-916c-0800200c9a66"
INITIALIZATION_SERVICE = f"a92ee000{BASE_UUID}"
PAIRING_SERVICE = f"a92ee100{BASE_UUID}"
PAIRING_GDIO = f"a92ee101{BASE_UUID}"
KEYTURNER_SERVICE = f"a92ee200{BASE_UUID}"
KEYTURNER_GDIO = f"a92ee201{BASE_UUID}"
KEYTURNER_USDIO = f"a92ee202{BASE_UUID}"

KEY_BYTES = 32
NONCE_BYTES = 24
CHALLENGE_BYTES = 32
MAC_BYTES = 16
HEADER_BYTES = NONCE_BYTES + 4 + 2
# Indications carry at most 20 bytes (the characteristic's declared maximum size).
CHUNK_BYTES = 20


class Command(IntEnum):
    """Command identifiers of the Smart Lock API (16-bit, little-endian on the wire)."""

    REQUEST_DATA = 0x0001
    PUBLIC_KEY = 0x0003
    CHALLENGE = 0x0004
    AUTHORIZATION_AUTHENTICATOR = 0x0005
    AUTHORIZATION_DATA = 0x0006
    AUTHORIZATION_ID = 0x0007
    KEYTURNER_STATES = 0x000C
    LOCK_ACTION = 0x000D
    STATUS = 0x000E
    ERROR_REPORT = 0x0012
    AUTHORIZATION_ID_CONFIRMATION = 0x001E
    VERIFY_SECURITY_PIN = 0x0020
    REQUEST_LOG_ENTRIES = 0x0031
    LOG_ENTRY = 0x0032
    LOG_ENTRY_COUNT = 0x0033
    ADD_KEYPAD_CODE = 0x0041
    KEYPAD_CODE_ID = 0x0042
    REQUEST_KEYPAD_CODES = 0x0043
    KEYPAD_CODE_COUNT = 0x0044
    KEYPAD_CODE = 0x0045
    UPDATE_KEYPAD_CODE = 0x0046
    REMOVE_KEYPAD_CODE = 0x0047


# Payload sizes of the messages the lock sends unencrypted on the pairing GDIO: a plain frame
# carries no length, so the reader needs them to know where one message ends.
PLAIN_PAYLOAD_BYTES: dict[int, int] = {
    Command.PUBLIC_KEY: KEY_BYTES,
    Command.CHALLENGE: CHALLENGE_BYTES,
    Command.AUTHORIZATION_ID: 32 + 4 + 16 + CHALLENGE_BYTES,
    Command.STATUS: 1,
    Command.ERROR_REPORT: 3,
}


def crc16(data: bytes) -> int:
    """CRC-CCITT-FALSE: polynomial 0x1021, initial 0xFFFF, no reflection, no final xor."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _with_crc(data: bytes) -> bytes:
    return data + struct.pack("<H", crc16(data))


def _check_crc(data: bytes) -> bytes:
    if len(data) < 4:
        raise NukiFrameError(f"frame of {len(data)} bytes is too short")
    body, (crc,) = data[:-2], struct.unpack("<H", data[-2:])
    if crc16(body) != crc:
        raise NukiFrameError("frame CRC does not match")
    return body


def encode_plain(command: int, payload: bytes = b"") -> bytes:
    """An unencrypted frame: command | payload | CRC."""
    return _with_crc(struct.pack("<H", command) + payload)


def decode_plain(frame: bytes) -> tuple[int, bytes]:
    """(command, payload) of an unencrypted frame; NukiFrameError if damaged."""
    body = _check_crc(frame)
    return struct.unpack("<H", body[:2])[0], body[2:]


@dataclass(frozen=True, slots=True)
class Message:
    """One decrypted message: who it is for, its command and its payload."""

    auth_id: int
    command: int
    payload: bytes


def encode_encrypted(key: bytes, nonce: bytes, auth_id: int, command: int, payload: bytes) -> bytes:
    """An encrypted frame under ``key`` with ``nonce`` (24 fresh random bytes per message)."""
    if len(nonce) != NONCE_BYTES or len(key) != KEY_BYTES:
        raise ValueError("a Nuki frame needs a 24-byte nonce and a 32-byte key")
    plain = _with_crc(struct.pack("<IH", auth_id, command) + payload)
    sealed = crypto_secretbox(plain, nonce, key)
    return nonce + struct.pack("<IH", auth_id, len(sealed)) + sealed


def frame_length(header: bytes) -> int:
    """Total bytes of the encrypted frame whose first HEADER_BYTES are ``header``."""
    if len(header) < HEADER_BYTES:
        raise NukiFrameError("encrypted frame header is incomplete")
    length: int = struct.unpack("<H", header[NONCE_BYTES + 4 : HEADER_BYTES])[0]
    return HEADER_BYTES + length


def decode_encrypted(key: bytes, frame: bytes) -> Message:
    """Open an encrypted frame; NukiFrameError if its length, MAC, CRC or ids do not hold."""
    if len(frame) != frame_length(frame) or len(frame) < HEADER_BYTES + MAC_BYTES + 8:
        raise NukiFrameError("encrypted frame length does not match its header")
    nonce = frame[:NONCE_BYTES]
    (outer_id,) = struct.unpack("<I", frame[NONCE_BYTES : NONCE_BYTES + 4])
    try:
        plain = crypto_secretbox_open(frame[HEADER_BYTES:], nonce, key)
    except CryptoError:
        raise NukiFrameError("encrypted frame does not open with the shared key") from None
    body = _check_crc(plain)
    if len(body) < 6:
        raise NukiFrameError("decrypted message is too short")
    auth_id, command = struct.unpack("<IH", body[:6])
    if auth_id != outer_id:
        raise NukiFrameError("authorization ids inside and outside the frame differ")
    return Message(auth_id, command, body[6:])


def frame_auth_id(frame: bytes) -> int:
    """The clear-text authorization id of an encrypted frame (to pick the key)."""
    if len(frame) < HEADER_BYTES:
        raise NukiFrameError("encrypted frame header is incomplete")
    auth_id: int = struct.unpack("<I", frame[NONCE_BYTES : NONCE_BYTES + 4])[0]
    return auth_id


def public_key(private_key: bytes) -> bytes:
    """The X25519 public key of ``private_key``."""
    return crypto_scalarmult_base(private_key)


def shared_key(peer_public_key: bytes, private_key: bytes) -> bytes:
    """crypto_box_beforenm: HSalsa20 over the X25519 shared secret (Nuki's kdf1(dh1))."""
    return crypto_box_beforenm(peer_public_key, private_key)


def authenticator(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 under the shared key over the concatenated ``parts`` (Nuki's h1)."""
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def authenticators_match(expected: bytes, received: bytes) -> bool:
    """Constant-time comparison of two authenticators."""
    return hmac.compare_digest(expected, received)


def chunks(frame: bytes, size: int = CHUNK_BYTES) -> list[bytes]:
    """``frame`` cut into indication-sized pieces, as the lock sends it."""
    return [frame[i : i + size] for i in range(0, len(frame), size)] or [b""]


class Reassembler:
    """Joins indication pieces into whole frames (encrypted, or plain with known sizes)."""

    def __init__(self, *, encrypted: bool) -> None:
        self._encrypted = encrypted
        self._buffer = b""

    def feed(self, piece: bytes) -> list[bytes]:
        """Add one piece; return every frame it completed (usually none or one)."""
        self._buffer += piece
        frames: list[bytes] = []
        while (size := self._next_size()) is not None and len(self._buffer) >= size:
            frames.append(self._buffer[:size])
            self._buffer = self._buffer[size:]
        return frames

    def reset(self) -> None:
        """Forget a partial frame (the link dropped)."""
        self._buffer = b""

    def _next_size(self) -> int | None:
        if self._encrypted:
            return frame_length(self._buffer) if len(self._buffer) >= HEADER_BYTES else None
        if len(self._buffer) < 2:
            return None
        (command,) = struct.unpack("<H", self._buffer[:2])
        size = PLAIN_PAYLOAD_BYTES.get(command)
        if size is None:
            self._buffer = b""
            raise NukiFrameError(f"unexpected plain command 0x{command:04X}")
        return 2 + size + 2
