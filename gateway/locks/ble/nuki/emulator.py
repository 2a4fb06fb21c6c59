"""A Nuki Smart Lock emulator on the fake bleak backend, speaking the keyturner protocol.

It pairs over the pairing GDIO (only in pairing mode), answers encrypted commands on the
USDIO (state, challenges, lock actions with ACCEPTED / states / COMPLETE, keypad codes and
log entries behind the security PIN), reports errors as the lock does, keeps its own log and
advertises the iBeacon-style state-changed flag. Test knobs: jam, busy, silence, a link drop
after ACCEPTED, and Add Keypad Code answered with or without the Keypad Code ID.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

from ..fake import FakePeripheral
from . import codec, keypad, messages
from .codec import Command
from .errors import ErrorCode, NukiFrameError
from .keyturner import (
    KeyturnerStates,
    LogEntry,
    battery_byte,
    decode_lock_action,
    decode_log_request,
    keypad_action_data,
    lock_action_data,
    log_entry_count,
)
from .messages import (
    ActionTrigger,
    CompletionStatus,
    DoorSensorState,
    LockAction,
    LockState,
    LogEntryType,
    NukiState,
    SortOrder,
    StatusCode,
)
from .pairing_lock import LockPairing

# Apple's company id: the lock's beacon is an iBeacon frame.
APPLE = 0x004C
# Bit 0 of the beacon's TX power byte: "state changed, connect and read".
BEACON_POWER = 0xC4
# After this many wrong security PINs the lock refuses PIN commands.
MAX_PIN_ATTEMPTS = 3
_ACTION_TARGET = {
    LockAction.UNLOCK: (LockState.UNLOCKING, LockState.UNLOCKED),
    LockAction.UNLATCH: (LockState.UNLATCHING, LockState.UNLATCHED),
    LockAction.LOCK: (LockState.LOCKING, LockState.LOCKED),
    LockAction.FULL_LOCK: (LockState.LOCKING, LockState.LOCKED),
}
_PIN_COMMANDS = {
    Command.VERIFY_SECURITY_PIN,
    Command.ADD_KEYPAD_CODE,
    Command.UPDATE_KEYPAD_CODE,
    Command.REMOVE_KEYPAD_CODE,
    Command.REQUEST_KEYPAD_CODES,
    Command.REQUEST_LOG_ENTRIES,
}


@dataclass(slots=True)
class Authorization:
    """One paired client as the lock stores it."""

    auth_id: int
    shared_key: bytes
    name: str
    challenge: bytes | None = None


class NukiEmulator(FakePeripheral):
    """An emulated Nuki Smart Lock 3.0 with a paired keypad and a door sensor."""

    def __init__(
        self,
        address: str,
        *,
        now: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        nuki_id: int = 0x2A37599A,
        security_pin: int = 1234,
        keypad_slots: int = 100,
        motor_seconds: float = 0.0,
    ) -> None:
        super().__init__(address, f"Nuki_{nuki_id:08X}")
        self.services = {
            codec.PAIRING_SERVICE: {codec.PAIRING_GDIO: ["write", "indicate"]},
            codec.KEYTURNER_SERVICE: {
                codec.KEYTURNER_GDIO: ["write", "indicate"],
                codec.KEYTURNER_USDIO: ["write", "indicate"],
            },
        }
        self.nuki_id = nuki_id
        self.security_pin = security_pin
        self.keypad_slots = keypad_slots
        self.motor_seconds = motor_seconds
        self.now = now
        self._sleep = sleep
        self.private_key = os.urandom(32)
        self.authorizations: dict[int, Authorization] = {}
        self._auth_ids = itertools.count(2)
        self.pairing = LockPairing(
            self.private_key, self.nuki_id, lambda: next(self._auth_ids), self._register
        )
        self.pairing_mode = False
        self.lock_state: int = LockState.LOCKED
        self.trigger: int = ActionTrigger.SYSTEM
        self.last_action: tuple[int, int, int] = (LockAction.LOCK, ActionTrigger.SYSTEM, 0)
        self.door: int = DoorSensorState.DOOR_CLOSED
        self.battery_percent = 90
        self.codes: dict[int, keypad.KeypadEntry] = {}
        self.log: list[LogEntry] = []
        self.state_changed = False
        self.pin_failures = 0
        self.returns_code_id = True
        self.jam_next = False
        self.busy = False
        self.silent = False
        self.drop_after_accept = False
        self.actions_performed: list[int] = []
        self._code_ids = itertools.count(1)
        self._log_index = itertools.count(1)
        self._reassembler = codec.Reassembler(encrypted=True)
        self._beacon()

    # -- physical world -------------------------------------------------------------------

    def set_pairing_mode(self, on: bool) -> None:
        """Hold the button for 5 s (on) or let pairing mode time out (off)."""
        self.pairing_mode = on
        self.pairing.reset()
        self._beacon()

    def press_keypad(self, code: str) -> bool:
        """Type ``code`` on the paired keypad; True if a valid code unlocked the door."""
        typed = int(code) if code.isdigit() else -1
        match = next((e for e in self.codes.values() if e.spec.code == typed), None)
        now = self.now()
        valid = match is not None and match.spec.enabled
        if match is not None and match.spec.time_limited:
            start, end = match.spec.allowed_from, match.spec.allowed_until
            valid = valid and (start is None or start <= now) and (end is None or now < end)
        completion = CompletionStatus.SUCCESS if valid else CompletionStatus.INVALID_CODE
        code_id = match.code_id if match is not None else 0
        data = keypad_action_data(LockAction.UNLOCK, 1, completion, code_id)
        self._append_log(0, "Keypad", LogEntryType.KEYPAD_ACTION, data)
        if valid:
            self._move(LockState.UNLOCKED, LockAction.UNLOCK, ActionTrigger.MANUAL)
        self._changed()
        return valid

    def turn_knob(self, action: int = LockAction.UNLOCK) -> None:
        """Turn the knob by hand."""
        _, target = _ACTION_TARGET[LockAction(action)]
        self._move(target, action, ActionTrigger.MANUAL)
        data = lock_action_data(action, ActionTrigger.MANUAL, 0, CompletionStatus.SUCCESS)
        self._append_log(0, "", LogEntryType.LOCK_ACTION, data)
        self._changed()

    def set_door(self, opened: bool) -> None:
        """Open or close the door (the door sensor reports it)."""
        self.door = DoorSensorState.DOOR_OPENED if opened else DoorSensorState.DOOR_CLOSED
        self._append_log(0, "", LogEntryType.DOOR_SENSOR, bytes([self.door]))
        self._changed()

    def set_battery(self, percent: int) -> None:
        self.battery_percent = percent
        self._changed()

    def states(self) -> KeyturnerStates:
        """The lock's Keyturner States now."""
        mode = NukiState.PAIRING_MODE if self.pairing_mode else NukiState.DOOR_MODE
        action, trigger, completion = self.last_action
        return KeyturnerStates(
            mode,
            self.lock_state,
            self.trigger,
            self.now(),
            0,
            battery_byte(self.battery_percent, critical=self.battery_percent < 20),
            last_lock_action=action,
            last_lock_action_trigger=trigger,
            last_lock_action_completion_status=completion,
            door_sensor_state=self.door,
        )

    # -- radio ----------------------------------------------------------------------------

    def on_disconnect(self) -> None:
        self._reassembler.reset()
        self.pairing.reset()

    async def handle_write(self, char_uuid: str, data: bytes) -> None:
        if self.silent:
            return
        if char_uuid == codec.PAIRING_GDIO:
            for command, payload in self.pairing.handle(data, self.pairing_mode):
                self._send_plain(codec.PAIRING_GDIO, command, payload)
            return
        if char_uuid == codec.KEYTURNER_USDIO:
            await self._handle_encrypted(data)

    async def _handle_encrypted(self, frame: bytes) -> None:
        try:
            auth = self.authorizations.get(codec.frame_auth_id(frame))
            message = None if auth is None else codec.decode_encrypted(auth.shared_key, frame)
        except NukiFrameError:
            message = None
        if auth is None or message is None:
            self._error_plain(ErrorCode.K_NOT_AUTHORIZED, 0)
            return
        try:
            await self._dispatch(auth, message.command, message.payload)
        except NukiFrameError:
            self._send(
                auth,
                Command.ERROR_REPORT,
                messages.error_report(ErrorCode.BAD_LENGTH, message.command),
            )
        except _Refusal as refusal:
            self._send(
                auth, Command.ERROR_REPORT, messages.error_report(refusal.code, message.command)
            )

    async def _dispatch(self, auth: Authorization, command: int, payload: bytes) -> None:
        if command == Command.REQUEST_DATA:
            self._request_data(auth, messages.decode_request_data(payload))
            return
        body = self._take_challenge(auth, command, payload)
        handlers: dict[int, Callable[[Authorization, bytes], Awaitable[None]]] = {
            Command.LOCK_ACTION: self._lock_action,
            Command.VERIFY_SECURITY_PIN: self._verify_pin,
            Command.ADD_KEYPAD_CODE: self._add_code,
            Command.UPDATE_KEYPAD_CODE: self._update_code,
            Command.REMOVE_KEYPAD_CODE: self._remove_code,
            Command.REQUEST_KEYPAD_CODES: self._list_codes,
            Command.REQUEST_LOG_ENTRIES: self._list_log,
        }
        handler = handlers.get(command)
        if handler is None:
            raise _Refusal(ErrorCode.UNKNOWN)
        await handler(auth, body)

    def _request_data(self, auth: Authorization, requested: int) -> None:
        if requested == Command.KEYTURNER_STATES:
            self._send(auth, Command.KEYTURNER_STATES, self.states().encode())
            if self.state_changed:
                self.state_changed = False
                self._beacon()
        elif requested == Command.CHALLENGE:
            auth.challenge = os.urandom(codec.CHALLENGE_BYTES)
            self._send(auth, Command.CHALLENGE, auth.challenge)
        else:
            raise _Refusal(ErrorCode.K_BAD_PARAMETER)

    def _take_challenge(self, auth: Authorization, command: int, payload: bytes) -> bytes:
        needs_pin = command in _PIN_COMMANDS
        body, nonce, pin = messages.split_challenge(payload, pin=needs_pin)
        expected, auth.challenge = auth.challenge, None
        if expected is None or not codec.authenticators_match(expected, nonce):
            raise _Refusal(ErrorCode.K_BAD_NONCE)
        if needs_pin:
            if self.pin_failures >= MAX_PIN_ATTEMPTS:
                raise _Refusal(ErrorCode.K_TOO_MANY_PIN_ATTEMPTS)
            if pin != self.security_pin:
                self.pin_failures += 1
                raise _Refusal(ErrorCode.K_BAD_PIN)
            self.pin_failures = 0
        return body

    async def _lock_action(self, auth: Authorization, body: bytes) -> None:
        request = decode_lock_action(body)
        if request.action not in _ACTION_TARGET:
            raise _Refusal(ErrorCode.K_BAD_PARAMETER)
        if self.busy:
            raise _Refusal(ErrorCode.K_BUSY)
        moving, target = _ACTION_TARGET[LockAction(request.action)]
        self._send(auth, Command.STATUS, messages.status(StatusCode.ACCEPTED))
        if self.jam_next:
            self.jam_next = False
            self._finish(
                auth, request.action, LockState.MOTOR_BLOCKED, CompletionStatus.MOTOR_BLOCKED
            )
            raise _Refusal(ErrorCode.K_MOTOR_BLOCKED)
        self.busy = True
        self.lock_state = moving
        self._send(auth, Command.KEYTURNER_STATES, self.states().encode())
        if self.drop_after_accept:
            self.drop_after_accept = False
            if self._air is not None:
                self._air.drop(self.address)
        await self._sleep(self.motor_seconds)
        self.busy = False
        self.actions_performed.append(request.action)
        self._finish(auth, request.action, target, CompletionStatus.SUCCESS)
        self._send(auth, Command.STATUS, messages.status(StatusCode.COMPLETE))

    def _finish(self, auth: Authorization, action: int, state: int, completion: int) -> None:
        self._move(state, action, ActionTrigger.SYSTEM, completion)
        data = lock_action_data(action, ActionTrigger.SYSTEM, 0, completion)
        self._append_log(auth.auth_id, auth.name, LogEntryType.LOCK_ACTION, data)
        self._send(auth, Command.KEYTURNER_STATES, self.states().encode())
        self._changed()

    async def _verify_pin(self, auth: Authorization, body: bytes) -> None:
        self._send(auth, Command.STATUS, messages.status(StatusCode.COMPLETE))

    async def _add_code(self, auth: Authorization, body: bytes) -> None:
        spec = keypad.decode_add(body)
        self._check_code(spec, None)
        if len(self.codes) >= self.keypad_slots:
            raise _Refusal(ErrorCode.K_TOO_MANY_ENTRIES)
        code_id = next(self._code_ids)
        self.codes[code_id] = keypad.KeypadEntry(code_id, spec, self.now(), None, 0)
        if self.returns_code_id:
            self._send(auth, Command.KEYPAD_CODE_ID, keypad.code_id_payload(code_id, self.now()))
        else:
            self._send(auth, Command.STATUS, messages.status(StatusCode.COMPLETE))

    async def _update_code(self, auth: Authorization, body: bytes) -> None:
        code_id, spec = keypad.decode_update(body)
        entry = self.codes.get(code_id)
        if entry is None:
            raise _Refusal(ErrorCode.K_BAD_PARAMETER)
        self._check_code(spec, code_id)
        self.codes[code_id] = replace(entry, spec=spec)
        self._send(auth, Command.STATUS, messages.status(StatusCode.COMPLETE))

    async def _remove_code(self, auth: Authorization, body: bytes) -> None:
        if self.codes.pop(keypad.decode_remove_request(body), None) is None:
            raise _Refusal(ErrorCode.K_BAD_PARAMETER)
        self._send(auth, Command.STATUS, messages.status(StatusCode.COMPLETE))

    async def _list_codes(self, auth: Authorization, body: bytes) -> None:
        offset, count = keypad.decode_list_request(body)
        self._send(auth, Command.KEYPAD_CODE_COUNT, keypad.code_count(len(self.codes)))
        for entry in sorted(self.codes.values(), key=lambda e: e.code_id)[offset : offset + count]:
            self._send(auth, Command.KEYPAD_CODE, entry.encode())
        self._send(auth, Command.STATUS, messages.status(StatusCode.COMPLETE))

    async def _list_log(self, auth: Authorization, body: bytes) -> None:
        request = decode_log_request(body)
        if request.total_count:
            self._send(auth, Command.LOG_ENTRY_COUNT, log_entry_count(len(self.log)))
        entries = sorted(self.log, key=lambda e: e.index)
        if request.sort_order == SortOrder.DESCENDING:
            entries.reverse()
            start = request.start_index or (entries[0].index if entries else 0)
            entries = [e for e in entries if e.index <= start]
        else:
            entries = [e for e in entries if e.index >= request.start_index]
        for entry in entries[: request.count]:
            self._send(auth, Command.LOG_ENTRY, entry.encode())
        self._send(auth, Command.STATUS, messages.status(StatusCode.COMPLETE))

    def _check_code(self, spec: keypad.KeypadCodeSpec, own_id: int | None) -> None:
        if keypad.code_problem(f"{spec.code:06d}") is not None:
            raise _Refusal(ErrorCode.K_CODE_INVALID)
        if any(e.spec.code == spec.code and e.code_id != own_id for e in self.codes.values()):
            raise _Refusal(ErrorCode.K_CODE_ALREADY_EXISTS)

    # -- plumbing -------------------------------------------------------------------------

    def _register(self, auth_id: int, shared_key: bytes, name: str) -> None:
        self.authorizations[auth_id] = Authorization(auth_id, shared_key, name)
        self.pairing_mode = False
        self._beacon()

    def _move(self, state: int, action: int, trigger: int, completion: int = 0) -> None:
        self.lock_state = state
        self.trigger = trigger
        self.last_action = (action, trigger, completion)

    def _append_log(self, auth_id: int, name: str, kind: int, data: bytes) -> None:
        index = next(self._log_index)
        self.log.append(LogEntry(index, self.now(), auth_id, name, kind, data))

    def _changed(self) -> None:
        self.state_changed = True
        self._beacon()

    def _beacon(self) -> None:
        power = BEACON_POWER | int(self.state_changed)
        uuid = bytes.fromhex(codec.KEYTURNER_SERVICE.replace("-", ""))
        self.manufacturer_data = {
            APPLE: b"\x02\x15" + uuid + struct.pack(">I", self.nuki_id) + bytes([power])
        }
        ident = struct.pack(">I", self.nuki_id)
        self.service_data = {codec.PAIRING_SERVICE: ident} if self.pairing_mode else {}
        self.service_uuids = [codec.KEYTURNER_SERVICE]
        self.advertise()

    def _send(self, auth: Authorization, command: int, payload: bytes) -> None:
        frame = codec.encode_encrypted(
            auth.shared_key, os.urandom(codec.NONCE_BYTES), auth.auth_id, command, payload
        )
        for piece in codec.chunks(frame):
            self.notify(codec.KEYTURNER_USDIO, piece)

    def _send_plain(self, char_uuid: str, command: int, payload: bytes) -> None:
        for piece in codec.chunks(codec.encode_plain(command, payload)):
            self.notify(char_uuid, piece)

    def _error_plain(self, code: int, command: int) -> None:
        self._send_plain(
            codec.KEYTURNER_GDIO, Command.ERROR_REPORT, messages.error_report(code, command)
        )


class _Refusal(Exception):  # noqa: N818 - control flow inside the emulator, never escapes it
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code
