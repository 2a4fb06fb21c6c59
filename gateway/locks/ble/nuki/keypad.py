"""Keypad code commands (0x0041-0x0047): encode, decode and the lock's code rules. No I/O."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

from .messages import (
    KEYPAD_NAME_BYTES,
    decode_name,
    decode_time,
    encode_name,
    encode_time,
    require_size,
)

# Weekday bits: bit 6 Monday ... bit 0 Sunday; all set = every day.
ALL_WEEKDAYS = 0x7F
CODE_DIGITS = 6
_TIME = 7


@dataclass(frozen=True, slots=True)
class KeypadCodeSpec:
    """A code as Add/Update Keypad Code carry it: six digits, a name, a validity window."""

    code: int
    name: str
    allowed_from: datetime | None
    allowed_until: datetime | None
    enabled: bool = True
    weekdays: int = ALL_WEEKDAYS
    # (hour, minute) daily window; (0, 0) to (0, 0) means the whole day.
    from_time: tuple[int, int] = (0, 0)
    until_time: tuple[int, int] = (0, 0)

    @property
    def time_limited(self) -> bool:
        return self.allowed_from is not None or self.allowed_until is not None

    def limits(self) -> bytes:
        """time limited | from | until | weekdays | from time | until time."""
        return (
            bytes([int(self.time_limited)])
            + encode_time(self.allowed_from)
            + encode_time(self.allowed_until)
            + bytes([self.weekdays, *self.from_time, *self.until_time])
        )

    def encode_add(self) -> bytes:
        """Add Keypad Code body: code (4) | name (20) | limits."""
        return (
            struct.pack("<I", self.code) + encode_name(self.name, KEYPAD_NAME_BYTES) + self.limits()
        )

    def encode_update(self, code_id: int) -> bytes:
        """Update Keypad Code body: id (2) | code (4) | name (20) | enabled | limits."""
        head = struct.pack("<HI", code_id, self.code) + encode_name(self.name, KEYPAD_NAME_BYTES)
        return head + bytes([int(self.enabled)]) + self.limits()


_LIMITS = 1 + _TIME + _TIME + 1 + 4


def _decode_limits(raw: bytes, code: int, name: str, enabled: bool) -> KeypadCodeSpec:
    limited = bool(raw[0])
    start = decode_time(raw[1 : 1 + _TIME]) if limited else None
    end = decode_time(raw[1 + _TIME : 1 + 2 * _TIME]) if limited else None
    tail = raw[1 + 2 * _TIME :]
    return KeypadCodeSpec(
        code, name, start, end, enabled, tail[0], (tail[1], tail[2]), (tail[3], tail[4])
    )


def decode_add(body: bytes) -> KeypadCodeSpec:
    require_size(body, 4 + KEYPAD_NAME_BYTES + _LIMITS, "add keypad code")
    (code,) = struct.unpack("<I", body[:4])
    name = decode_name(body[4 : 4 + KEYPAD_NAME_BYTES])
    return _decode_limits(body[4 + KEYPAD_NAME_BYTES :], code, name, True)


def decode_update(body: bytes) -> tuple[int, KeypadCodeSpec]:
    require_size(body, 6 + KEYPAD_NAME_BYTES + 1 + _LIMITS, "update keypad code")
    code_id, code = struct.unpack("<HI", body[:6])
    name = decode_name(body[6 : 6 + KEYPAD_NAME_BYTES])
    enabled = bool(body[6 + KEYPAD_NAME_BYTES])
    return code_id, _decode_limits(body[7 + KEYPAD_NAME_BYTES :], code, name, enabled)


@dataclass(frozen=True, slots=True)
class KeypadEntry:
    """Keypad Code (0x0045): one stored code as the lock lists it."""

    code_id: int
    spec: KeypadCodeSpec
    created: datetime | None
    last_active: datetime | None
    lock_count: int

    def encode(self) -> bytes:
        spec = self.spec
        head = struct.pack("<HI", self.code_id, spec.code) + encode_name(
            spec.name, KEYPAD_NAME_BYTES
        )
        middle = bytes([int(spec.enabled)]) + encode_time(self.created)
        middle += encode_time(self.last_active) + struct.pack("<H", self.lock_count)
        return head + middle + spec.limits()


def decode_entry(payload: bytes) -> KeypadEntry:
    size = 6 + KEYPAD_NAME_BYTES + 1 + 2 * _TIME + 2 + _LIMITS
    require_size(payload, size, "keypad code", exact=False)
    code_id, code = struct.unpack("<HI", payload[:6])
    offset = 6 + KEYPAD_NAME_BYTES
    name = decode_name(payload[6:offset])
    enabled = bool(payload[offset])
    created = decode_time(payload[offset + 1 : offset + 1 + _TIME])
    last_active = decode_time(payload[offset + 1 + _TIME : offset + 1 + 2 * _TIME])
    offset += 1 + 2 * _TIME
    (count,) = struct.unpack("<H", payload[offset : offset + 2])
    spec = _decode_limits(payload[offset + 2 : size], code, name, enabled)
    return KeypadEntry(code_id, spec, created, last_active, count)


def code_id_payload(code_id: int, created: datetime | None) -> bytes:
    """Keypad Code ID (0x0042): the new code's id and creation date."""
    return struct.pack("<H", code_id) + encode_time(created)


def decode_code_id(payload: bytes) -> int:
    require_size(payload, 2, "keypad code id", exact=False)
    return int(struct.unpack("<H", payload[:2])[0])


def list_request(offset: int, count: int) -> bytes:
    """Request Keypad Codes body: offset (2) | count (2)."""
    return struct.pack("<HH", offset, count)


def decode_list_request(body: bytes) -> tuple[int, int]:
    require_size(body, 4, "request keypad codes")
    offset, count = struct.unpack("<HH", body)
    return offset, count


def code_count(count: int) -> bytes:
    return struct.pack("<H", count)


def decode_code_count(payload: bytes) -> int:
    require_size(payload, 2, "keypad code count")
    return int(struct.unpack("<H", payload)[0])


def remove_request(code_id: int) -> bytes:
    return struct.pack("<H", code_id)


def decode_remove_request(body: bytes) -> int:
    require_size(body, 2, "remove keypad code")
    return int(struct.unpack("<H", body)[0])


def code_problem(code: str) -> str | None:
    """Why the lock would reject ``code`` (six digits 1-9, not starting with 12), or None."""
    if len(code) != CODE_DIGITS or not all(c in "123456789" for c in code):
        return "a Nuki keypad code is six digits 1-9 (no 0)"
    if code.startswith("12"):
        return "a Nuki keypad code may not start with 12"
    return None
