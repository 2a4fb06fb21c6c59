"""Payloads of the Smart Lock API commands this driver uses: encode and decode, no I/O.

Every decoder returns a valid value or raises NukiFrameError. Enumerated fields stay plain
ints (compared against the IntEnums below), so a value a newer firmware adds never breaks
parsing. Times are the lock's (UTC) clock.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum

from .codec import CHALLENGE_BYTES, KEY_BYTES
from .errors import NukiFrameError

NAME_BYTES = 32
KEYPAD_NAME_BYTES = 20
UUID_BYTES = 16
_TIME = struct.Struct("<HBBBBB")


class NukiState(IntEnum):
    UNINITIALIZED = 0x00
    PAIRING_MODE = 0x01
    DOOR_MODE = 0x02
    MAINTENANCE_MODE = 0x04


class LockState(IntEnum):
    UNCALIBRATED = 0x00
    LOCKED = 0x01
    UNLOCKING = 0x02
    UNLOCKED = 0x03
    LOCKING = 0x04
    UNLATCHED = 0x05
    UNLOCKED_LOCK_N_GO = 0x06
    UNLATCHING = 0x07
    CALIBRATION = 0xFC
    BOOT_RUN = 0xFD
    MOTOR_BLOCKED = 0xFE
    UNDEFINED = 0xFF


class LockAction(IntEnum):
    UNLOCK = 0x01
    LOCK = 0x02
    UNLATCH = 0x03
    LOCK_N_GO = 0x04
    LOCK_N_GO_UNLATCH = 0x05
    FULL_LOCK = 0x06


class ActionTrigger(IntEnum):
    SYSTEM = 0x00  # Bluetooth command (app, bridge, this hub)
    MANUAL = 0x01  # key or thumb turn
    BUTTON = 0x02
    AUTOMATIC = 0x03
    AUTO_LOCK = 0x06


class CompletionStatus(IntEnum):
    SUCCESS = 0x00
    MOTOR_BLOCKED = 0x01
    CANCELED = 0x02
    TOO_RECENT = 0x03
    BUSY = 0x04
    LOW_MOTOR_VOLTAGE = 0x05
    CLUTCH_FAILURE = 0x06
    MOTOR_POWER_FAILURE = 0x07
    INCOMPLETE = 0x08
    INVALID_CODE = 0xE0
    OTHER_ERROR = 0xFE
    UNKNOWN = 0xFF


class DoorSensorState(IntEnum):
    UNAVAILABLE = 0x00
    DEACTIVATED = 0x01
    DOOR_CLOSED = 0x02
    DOOR_OPENED = 0x03
    DOOR_STATE_UNKNOWN = 0x04
    CALIBRATING = 0x05


class StatusCode(IntEnum):
    COMPLETE = 0x00
    ACCEPTED = 0x01


class LogEntryType(IntEnum):
    LOGGING_ENABLED = 0x01
    LOCK_ACTION = 0x02
    CALIBRATION = 0x03
    INITIALIZATION_RUN = 0x04
    KEYPAD_ACTION = 0x05
    DOOR_SENSOR = 0x06
    DOOR_SENSOR_LOGGING_ENABLED = 0x07


class IdType(IntEnum):
    APP = 0x00
    BRIDGE = 0x01
    FOB = 0x02
    KEYPAD = 0x03


class SortOrder(IntEnum):
    ASCENDING = 0x00
    DESCENDING = 0x01


def require_size(payload: bytes, size: int, what: str, *, exact: bool = True) -> None:
    if len(payload) < size or (exact and len(payload) != size):
        raise NukiFrameError(f"{what}: {len(payload)} bytes, expected {size}")


def encode_time(moment: datetime | None) -> bytes:
    """Year (2, LE), month, day, hour, minute, second in UTC; all zero for None."""
    if moment is None:
        return bytes(_TIME.size)
    utc = moment.astimezone(UTC)
    return _TIME.pack(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)


def decode_time(raw: bytes) -> datetime | None:
    """The moment in ``raw`` (7 bytes); None when all zero (never set)."""
    require_size(raw, _TIME.size, "date")
    if not any(raw):
        return None
    try:
        year, month, day, hour, minute, second = _TIME.unpack(raw)
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise NukiFrameError(f"invalid date {raw.hex()}") from None


def encode_name(name: str, size: int) -> bytes:
    """UTF-8, cut to ``size`` bytes on a character boundary, zero padded."""
    raw = name.encode()[:size]
    raw = raw.decode(errors="ignore").encode()
    return raw.ljust(size, b"\0")


def decode_name(raw: bytes) -> str:
    """The zero-padded UTF-8 name in ``raw``."""
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def request_data(command: int) -> bytes:
    """Payload of Request Data (0x0001): the command the lock should send."""
    return struct.pack("<H", command)


def decode_request_data(payload: bytes) -> int:
    require_size(payload, 2, "request data")
    return int(struct.unpack("<H", payload)[0])


def status(code: int) -> bytes:
    return bytes([code])


def decode_status(payload: bytes) -> int:
    require_size(payload, 1, "status")
    return payload[0]


def error_report(code: int, command: int) -> bytes:
    return struct.pack("<BH", code, command)


def decode_error_report(payload: bytes) -> tuple[int, int]:
    """(error code, command identifier) of an Error Report."""
    require_size(payload, 3, "error report")
    code, command = struct.unpack("<BH", payload)
    return code, command


def decode_key(payload: bytes) -> bytes:
    require_size(payload, KEY_BYTES, "public key")
    return payload


def decode_challenge(payload: bytes) -> bytes:
    require_size(payload, CHALLENGE_BYTES, "challenge")
    return payload


def with_challenge(payload: bytes, nonce: bytes, pin: int | None = None) -> bytes:
    """``payload`` followed by the lock's challenge nonce and, for admin commands, the PIN."""
    tail = b"" if pin is None else struct.pack("<H", pin)
    return payload + nonce + tail


def split_challenge(payload: bytes, *, pin: bool) -> tuple[bytes, bytes, int | None]:
    """(body, nonce, pin) of a command built by ``with_challenge``."""
    tail = 2 if pin else 0
    require_size(payload, CHALLENGE_BYTES + tail, "challenged command", exact=False)
    end = len(payload) - tail
    body, nonce = payload[: end - CHALLENGE_BYTES], payload[end - CHALLENGE_BYTES : end]
    return body, nonce, int(struct.unpack("<H", payload[end:])[0]) if pin else None


@dataclass(frozen=True, slots=True)
class AuthorizationData:
    """Authorization Data (0x0006) without its authenticator."""

    id_type: int
    app_id: int
    name: str
    client_nonce: bytes

    def signed_part(self) -> bytes:
        """The bytes after the authenticator (also the start of what it authenticates)."""
        return (
            struct.pack("<BI", self.id_type, self.app_id)
            + encode_name(self.name, NAME_BYTES)
            + self.client_nonce
        )


def decode_authorization_data(payload: bytes) -> tuple[bytes, AuthorizationData]:
    """(authenticator, data) of an Authorization Data payload."""
    require_size(payload, 32 + 5 + NAME_BYTES + CHALLENGE_BYTES, "authorization data")
    id_type, app_id = struct.unpack("<BI", payload[32:37])
    name = decode_name(payload[37 : 37 + NAME_BYTES])
    return payload[:32], AuthorizationData(id_type, app_id, name, payload[37 + NAME_BYTES :])


@dataclass(frozen=True, slots=True)
class AuthorizationId:
    """Authorization-ID (0x0007) without its authenticator."""

    auth_id: int
    lock_uuid: bytes
    lock_nonce: bytes

    def signed_part(self) -> bytes:
        return struct.pack("<I", self.auth_id) + self.lock_uuid + self.lock_nonce


def decode_authorization_id(payload: bytes) -> tuple[bytes, AuthorizationId]:
    require_size(payload, 32 + 4 + UUID_BYTES + CHALLENGE_BYTES, "authorization id")
    (auth_id,) = struct.unpack("<I", payload[32:36])
    return payload[:32], AuthorizationId(auth_id, payload[36:52], payload[52:])


def decode_confirmation(payload: bytes) -> tuple[bytes, int]:
    """(authenticator, auth id) of Authorization-ID Confirmation (0x001E)."""
    require_size(payload, 36, "authorization id confirmation")
    return payload[:32], int(struct.unpack("<I", payload[32:])[0])
