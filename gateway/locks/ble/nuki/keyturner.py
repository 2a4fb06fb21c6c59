"""Keyturner States, Lock Action and the lock's log entries: encode and decode, no I/O."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

from .errors import NukiFrameError
from .messages import (
    NAME_BYTES,
    decode_name,
    decode_time,
    encode_name,
    encode_time,
    require_size,
)

# nuki state, lock state, trigger, time (7), tz offset (2), battery, config count, lock'n'go
# timer, last action, its trigger, its completion status, door sensor: API 2.0's 19 bytes.
_STATES_HEAD = struct.Struct("<BBB7shBBBBBBB")
# Later firmware appends night mode (2) and accessory battery (1).
_STATES_TAIL = struct.Struct("<HB")
_LOCK_ACTION = struct.Struct("<BIB")
_REQUEST_LOG = struct.Struct("<IHBB")
_LOG_HEAD = struct.Struct("<I7sI32sB")
_LOG_COUNT = struct.Struct("<BHBB")


@dataclass(frozen=True, slots=True)
class KeyturnerStates:
    """Keyturner States (0x000C): what the lock reports about itself."""

    nuki_state: int
    lock_state: int
    trigger: int
    current_time: datetime | None
    timezone_offset: int
    critical_battery_state: int
    config_update_count: int = 0
    lock_n_go_timer: int = 0
    last_lock_action: int = 0
    last_lock_action_trigger: int = 0
    last_lock_action_completion_status: int = 0
    door_sensor_state: int = 0
    night_mode_active: int = 0
    accessory_battery_state: int = 0

    @property
    def battery_critical(self) -> bool:
        """Bit 0 of the battery byte."""
        return bool(self.critical_battery_state & 0x01)

    @property
    def battery_percent(self) -> int:
        """Bits 2-7 of the battery byte hold the charge in steps of two percent."""
        return min(100, (self.critical_battery_state >> 2) * 2)

    def encode(self) -> bytes:
        """The payload, in the current (22-byte) layout."""
        return _STATES_HEAD.pack(
            self.nuki_state,
            self.lock_state,
            self.trigger,
            encode_time(self.current_time),
            self.timezone_offset,
            self.critical_battery_state,
            self.config_update_count,
            self.lock_n_go_timer,
            self.last_lock_action,
            self.last_lock_action_trigger,
            self.last_lock_action_completion_status,
            self.door_sensor_state,
        ) + _STATES_TAIL.pack(self.night_mode_active, self.accessory_battery_state)


def battery_byte(percent: int, *, critical: bool = False) -> int:
    """The Keyturner States battery byte for ``percent`` (0-100)."""
    return ((max(0, min(100, percent)) // 2) << 2) | int(critical)


def decode_keyturner_states(payload: bytes) -> KeyturnerStates:
    """Decode either layout; bytes past the known fields are ignored."""
    require_size(payload, _STATES_HEAD.size, "keyturner states", exact=False)
    head = _STATES_HEAD.unpack(payload[: _STATES_HEAD.size])
    night, accessory = 0, 0
    if len(payload) >= _STATES_HEAD.size + _STATES_TAIL.size:
        night, accessory = _STATES_TAIL.unpack(
            payload[_STATES_HEAD.size : _STATES_HEAD.size + _STATES_TAIL.size]
        )
    return KeyturnerStates(
        nuki_state=head[0],
        lock_state=head[1],
        trigger=head[2],
        current_time=decode_time(head[3]),
        timezone_offset=head[4],
        critical_battery_state=head[5],
        config_update_count=head[6],
        lock_n_go_timer=head[7],
        last_lock_action=head[8],
        last_lock_action_trigger=head[9],
        last_lock_action_completion_status=head[10],
        door_sensor_state=head[11],
        night_mode_active=night,
        accessory_battery_state=accessory,
    )


@dataclass(frozen=True, slots=True)
class LockActionRequest:
    """Lock Action (0x000D) without the challenge nonce that follows it."""

    action: int
    app_id: int
    flags: int = 0
    name_suffix: str | None = None

    def encode(self) -> bytes:
        suffix = b"" if self.name_suffix is None else encode_name(self.name_suffix, 20)
        return _LOCK_ACTION.pack(self.action, self.app_id, self.flags) + suffix


def decode_lock_action(body: bytes) -> LockActionRequest:
    """Decode the body (nonce removed) of a Lock Action."""
    if len(body) not in (_LOCK_ACTION.size, _LOCK_ACTION.size + 20):
        raise NukiFrameError(f"lock action: {len(body)} bytes")
    action, app_id, flags = _LOCK_ACTION.unpack(body[: _LOCK_ACTION.size])
    suffix = decode_name(body[_LOCK_ACTION.size :]) if len(body) > _LOCK_ACTION.size else None
    return LockActionRequest(action, app_id, flags, suffix)


@dataclass(frozen=True, slots=True)
class LogRequest:
    """Request Log Entries (0x0031) without nonce and PIN."""

    start_index: int
    count: int
    sort_order: int
    total_count: bool

    def encode(self) -> bytes:
        return _REQUEST_LOG.pack(
            self.start_index, self.count, self.sort_order, int(self.total_count)
        )


def decode_log_request(body: bytes) -> LogRequest:
    require_size(body, _REQUEST_LOG.size, "request log entries")
    start, count, order, total = _REQUEST_LOG.unpack(body)
    return LogRequest(start, count, order, bool(total))


@dataclass(frozen=True, slots=True)
class LogEntry:
    """Log Entry (0x0032): ``data`` is interpreted by ``type`` (see the properties)."""

    index: int
    timestamp: datetime | None
    auth_id: int
    name: str
    type: int
    data: bytes

    def encode(self) -> bytes:
        stamp = encode_time(self.timestamp)
        name = encode_name(self.name, NAME_BYTES)
        return _LOG_HEAD.pack(self.index, stamp, self.auth_id, name, self.type) + self.data

    def lock_action(self) -> tuple[int, int, int, int]:
        """(action, trigger, flags, completion status) of a lock-action entry."""
        require_size(self.data, 4, "lock action log data", exact=False)
        return self.data[0], self.data[1], self.data[2], self.data[3]

    def keypad_action(self) -> tuple[int, int, int, int]:
        """(action, source, completion status, code id) of a keypad entry."""
        require_size(self.data, 5, "keypad log data", exact=False)
        action, source, completion, code_id = struct.unpack("<BBBH", self.data[:5])
        return action, source, completion, code_id


def lock_action_data(action: int, trigger: int, flags: int, completion: int) -> bytes:
    return bytes([action, trigger, flags, completion])


def keypad_action_data(action: int, source: int, completion: int, code_id: int) -> bytes:
    return struct.pack("<BBBH", action, source, completion, code_id)


def decode_log_entry(payload: bytes) -> LogEntry:
    require_size(payload, _LOG_HEAD.size, "log entry", exact=False)
    index, stamp, auth_id, name, kind = _LOG_HEAD.unpack(payload[: _LOG_HEAD.size])
    return LogEntry(
        index, decode_time(stamp), auth_id, decode_name(name), kind, payload[_LOG_HEAD.size :]
    )


def log_entry_count(count: int, *, logging: bool = True, door_sensor: bool = True) -> bytes:
    """Log Entry Count (0x0033) payload."""
    return _LOG_COUNT.pack(int(logging), count, int(door_sensor), int(door_sensor))


def decode_log_entry_count(payload: bytes) -> int:
    require_size(payload, 3, "log entry count", exact=False)
    return int(struct.unpack("<H", payload[1:3])[0])
