"""The ``nuki_ble`` LockDriver: a Nuki Smart Lock over the hub's shared BLE transport.

Credentials come from pairing (``lockhub gateway pair nuki_ble --lock ID``) and live encrypted
in the CredentialStore. Events come from our own completed lock actions, from the lock's
state-changed beacon (then Keyturner States and, with the security PIN, the lock's log, which
attributes keypad unlocks by code id). See docs/locks/nuki_ble.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from pydantic import Field

from cloud_sync.protocol.tomlconfig import Section

from ....config import LockSection
from ....errors import ConfigError
from ...credentials import CredentialStore
from ...driver import (
    EventKind,
    EventQueue,
    KeypadCode,
    LockError,
    LockEvent,
    LockStatus,
    LockUnreachableError,
    Trigger,
)
from ...pairing import PairUI
from ...registry import DriverContext, parse_options
from ..transport import BleTransport
from . import codec, events
from .errors import (
    ErrorCode,
    NukiDuplicateCodeError,
    NukiJammedError,
    NukiKeypadUnsupportedError,
    NukiPairingNeededError,
    NukiRefusedError,
)
from .keypad import KeypadCodeSpec, KeypadEntry, code_problem
from .keyturner import KeyturnerStates, LockActionRequest, LogEntry
from .messages import ActionTrigger, CompletionStatus, LockAction, LogEntryType
from .messages import LockState as NukiLockState
from .pairing import pair_lock
from .session import MOTOR_TIMEOUT, RESPONSE_TIMEOUT, Credentials, Inbox, NukiSession

log = structlog.get_logger(__name__)

CREDENTIAL_KIND = "nuki_ble"
# Not a secret, but it must survive restarts so keypad unlocks made while the hub was down
# are still read; the credential store is the hub's per-lock persistent place.
LOG_MARK_KIND = "nuki_ble_log"
# An attempt whose outcome a dropped link hid is remembered this long: the coordinator retries
# within seconds, and later an old request id must not suppress a new action.
ATTEMPT_MEMORY = timedelta(minutes=5)
# Log entries per request: the lock sends one indication train per entry, 20 fit in ~2 s.
LOG_BATCH = 20
# A hub that was down for days catches up on at most this many batches of its log.
LOG_MAX_BATCHES = 5
MAC_PATTERN = r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$"
_EXPOSING_BITS = 0o077
_APPLE = 0x004C
_BEACON_UUID = bytes.fromhex(codec.KEYTURNER_SERVICE.replace("-", ""))
_TARGET = {
    LockAction.UNLOCK: EventKind.UNLOCKED,
    LockAction.UNLATCH: EventKind.UNLOCKED,
    LockAction.LOCK: EventKind.LOCKED,
}


class NukiBleOptions(Section):
    """``options`` of a ``nuki_ble`` lock."""

    address: str = Field(pattern=MAC_PATTERN)
    # A 0600 file holding the lock's security PIN: needed for keypad codes and log reading.
    security_pin_file: Path | None = None
    # Our name in the lock's user list and log (32 bytes at most).
    app_name: str = Field(default="lockhub", min_length=1, max_length=32)
    # Unlock pulls the latch too (doors without a handle on the outside).
    unlatch: bool = False
    has_keypad: bool = True


@dataclass(frozen=True, slots=True)
class _Attempt:
    action: int
    lock_time: datetime | None
    started: datetime


def read_security_pin(path: Path, source: str, lock_id: str) -> int:
    """The PIN in ``path`` (digits, 0-65535, mode 0600); ConfigError naming the option."""
    where = f"{source}: locks[{lock_id}].options.security_pin_file"
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(source, [f"{where}: cannot read {path}: {exc.strerror}"]) from None
    if mode & _EXPOSING_BITS:
        raise ConfigError(source, [f"{where}: {path} is readable by others; chmod 600 it"])
    if not text.isdigit() or int(text) > 0xFFFF:
        raise ConfigError(source, [f"{where}: {path} must hold the PIN as digits (0-65535)"])
    return int(text)


def credentials_to_dict(creds: Credentials) -> dict[str, int | str]:
    return {
        "auth_id": creds.auth_id,
        "shared_key": creds.shared_key.hex(),
        "app_id": creds.app_id,
        "lock_public_key": creds.lock_public_key.hex(),
    }


def credentials_from_dict(data: dict[str, object]) -> Credentials:
    try:
        return Credentials(
            int(str(data["auth_id"])),
            bytes.fromhex(str(data["shared_key"])),
            int(str(data["app_id"])),
            bytes.fromhex(str(data["lock_public_key"])),
        )
    except (KeyError, ValueError):
        raise NukiPairingNeededError("stored Nuki credentials are damaged; pair again") from None


def state_changed_beacon(advertisement: AdvertisementData) -> bool:
    """True when the lock's iBeacon frame has the state-changed bit (TX power bit 0) set."""
    frame = advertisement.manufacturer_data.get(_APPLE, b"")
    return len(frame) == 23 and frame[2:18] == _BEACON_UUID and bool(frame[22] & 0x01)


class NukiBleDriver:
    """One Nuki Smart Lock (LockDriver); calls are serialised with the beacon refresher."""

    def __init__(
        self,
        lock_id: str,
        options: NukiBleOptions,
        *,
        transport: BleTransport,
        store: CredentialStore,
        now: Callable[[], datetime],
        pin: int | None = None,
        response_timeout: float = RESPONSE_TIMEOUT,
        motor_timeout: float = MOTOR_TIMEOUT,
    ) -> None:
        self._lock_id = lock_id
        self._options = options
        self._transport = transport
        self._store = store
        self._now = now
        self._pin = pin
        self._timeouts = (response_timeout, motor_timeout)
        self._events = EventQueue()
        self._busy = asyncio.Lock()
        self._credentials: Credentials | None = None
        self._inbox: Inbox | None = None
        self._last: KeyturnerStates | None = None
        self._moving: KeyturnerStates | None = None
        self._pending: dict[str, _Attempt] = {}
        self._log_mark: int | None = None
        self._unwatch: Callable[[], None] | None = None
        self._refresh: asyncio.Task[None] | None = None

    @property
    def lock_id(self) -> str:
        return self._lock_id

    @property
    def vendor(self) -> str:
        return events.VENDOR

    @property
    def has_keypad(self) -> bool:
        """Keypad codes need a keypad and the security PIN."""
        return self._options.has_keypad and self._pin is not None

    async def start(self) -> None:
        """Load the pairing credentials and watch the lock's beacon; no connection yet."""
        data = self._store.load(self._lock_id, CREDENTIAL_KIND)
        if data is None:
            raise NukiPairingNeededError(
                f"lock {self._lock_id} is not paired: run "
                f"`lockhub gateway pair nuki_ble --lock {self._lock_id}`"
            )
        self._credentials = credentials_from_dict(data)
        self._inbox = Inbox(self._credentials)
        mark = self._store.load(self._lock_id, LOG_MARK_KIND)
        self._log_mark = int(mark["index"]) if mark is not None else None
        self._unwatch = self._transport.watch(self._options.address, self._heard)

    async def stop(self) -> None:
        """Stop watching, end a running refresh, end the events iterator."""
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError, LockError):
                await self._refresh
        self._events.close()

    def events(self) -> AsyncIterator[LockEvent]:
        return self._events

    async def status(self) -> LockStatus:
        """Read Keyturner States (no challenge, no PIN)."""
        async with self._busy, self._session() as session:
            states = await session.keyturner_states()
            self._observe(states)
        return events.status_of(states)

    async def poll(self) -> None:
        """Read the state and, with the PIN, the new log entries now (the beacon does this)."""
        async with self._busy, self._session() as session:
            states = await session.keyturner_states()
            self._observe(states)
            if self._pin is not None:
                await self._read_log(session, self._pin)

    async def unlock(self, request_id: str) -> None:
        """Unlock (or unlatch); see docs for how a retry after a dropped link stays single."""
        action = LockAction.UNLATCH if self._options.unlatch else LockAction.UNLOCK
        await self._act(request_id, action)

    async def lock(self, request_id: str) -> None:
        await self._act(request_id, LockAction.LOCK)

    async def add_keypad_code(self, code: KeypadCode) -> int:
        """Program a time-limited code; the lock's code id."""
        pin = self._keypad_pin()
        problem = code_problem(code.code)
        if problem is not None or code.valid_from >= code.valid_until:
            raise NukiRefusedError(problem or "a keypad code must end after it starts")
        spec = KeypadCodeSpec(int(code.code), code.name, code.valid_from, code.valid_until)
        async with self._busy, self._session() as session:
            if self._log_mark is None:
                # Mark the log before the first code goes on: its first use comes after the
                # mark, so the first log read cannot take it for history.
                await self._new_entries(session, pin)
            try:
                code_id = await session.add_keypad_code(spec, pin)
            except NukiDuplicateCodeError:
                # Our own earlier attempt may have gone through before a link dropped.
                entry = _find(await session.keypad_codes(pin), spec, same_window=True)
                if entry is None:
                    raise
                log.info("nuki.keypad_code_already_set", lock_id=self._lock_id)
                return entry.code_id
            if code_id is None:
                entry = _find(await session.keypad_codes(pin), spec, same_window=False)
                if entry is None:
                    raise NukiRefusedError("the lock confirmed the code but does not list it")
                code_id = entry.code_id
        log.info("nuki.keypad_code_added", lock_id=self._lock_id, code_id=code_id)
        return code_id

    async def remove_keypad_code(self, code_id: int) -> None:
        """Remove a code; an id the lock does not know is already removed."""
        pin = self._keypad_pin()
        async with self._busy, self._session() as session:
            try:
                await session.remove_keypad_code(code_id, pin)
            except NukiRefusedError as exc:
                if exc.code != ErrorCode.K_BAD_PARAMETER:
                    raise
                log.info("nuki.keypad_code_absent", lock_id=self._lock_id, code_id=code_id)

    # -- internals ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[NukiSession]:
        if self._credentials is None or self._inbox is None:
            raise NukiPairingNeededError(f"lock {self._lock_id}: driver not started")
        inbox, creds = self._inbox, self._credentials
        response, motor = self._timeouts
        async with self._transport.connection(
            self._options.address, setup=inbox.setup, on_lost=inbox.lost
        ) as client:
            yield NukiSession(client, inbox, creds, timeout=response, motor_timeout=motor)

    def _keypad_pin(self) -> int:
        if not self._options.has_keypad:
            raise NukiKeypadUnsupportedError(f"lock {self._lock_id} has no keypad")
        if self._pin is None:
            raise NukiKeypadUnsupportedError(
                f"lock {self._lock_id}: keypad codes need options.security_pin_file"
            )
        return self._pin

    async def _act(self, request_id: str, action: int) -> None:
        self._forget_old_attempts()
        async with self._busy, self._session() as session:
            before = await session.keyturner_states()
            attempt = self._pending.get(request_id)
            if attempt is not None and await self._went_through(session, attempt, before):
                del self._pending[request_id]
                log.info("nuki.retry_found_done", lock_id=self._lock_id, request_id=request_id)
                self._last = before
                self._confirm(request_id, action)
                return
            self._observe(before)
            self._pending[request_id] = _Attempt(action, before.current_time, self._now())
            creds = self._require_credentials()
            request = LockActionRequest(action, creds.app_id, 0, None)
            try:
                await session.lock_action(request, self._on_moving)
            except LockUnreachableError:
                raise  # outcome unknown: keep the attempt for the retry to check
            except NukiJammedError:
                del self._pending[request_id]
                self._emit(EventKind.JAMMED, f"request:{request_id}", request_id=request_id)
                raise
            except LockError:
                del self._pending[request_id]
                raise
            del self._pending[request_id]
            self._last = self._moving or self._last
            self._confirm(request_id, action)

    async def _went_through(
        self, session: NukiSession, attempt: _Attempt, states: KeyturnerStates
    ) -> bool:
        """Did the attempt a dropped link interrupted reach the motor? The log says for sure."""
        creds = self._require_credentials()
        if self._pin is not None:
            entries = await session.log_entries(self._pin, count=LOG_BATCH)
            return any(_ours(e, creds.auth_id, attempt) for e in entries)
        reached = events.status_of(states).state == events.status_of(self._target(attempt)).state
        return (
            reached
            and states.last_lock_action == attempt.action
            and states.last_lock_action_trigger == ActionTrigger.SYSTEM
            and states.last_lock_action_completion_status == CompletionStatus.SUCCESS
        )

    @staticmethod
    def _target(attempt: _Attempt) -> KeyturnerStates:
        state = (
            NukiLockState.LOCKED if attempt.action == LockAction.LOCK else NukiLockState.UNLOCKED
        )
        return KeyturnerStates(0, state, 0, None, 0, 0)

    def _on_moving(self, states: KeyturnerStates) -> None:
        self._moving = states

    def _confirm(self, request_id: str, action: int) -> None:
        self._emit(_TARGET[LockAction(action)], f"request:{request_id}", request_id=request_id)

    def _emit(self, kind: EventKind, suffix: str, *, request_id: str | None = None) -> None:
        event_id = f"{events.VENDOR}:{self._lock_id}:{suffix}"
        self._events.put(
            LockEvent(
                self._lock_id,
                kind,
                self._now(),
                events.VENDOR,
                event_id,
                Trigger.REMOTE,
                request_id=request_id,
            )
        )

    def _observe(self, states: KeyturnerStates) -> None:
        """Emit door / battery (and, without the log, bolt) changes since the last reading."""
        if self._last is not None:
            bolt = self._pin is None and not self._pending
            for event in events.from_states(
                self._last, states, self._lock_id, self._now(), bolt=bolt
            ):
                self._events.put(event)
        self._last = states

    async def _read_log(self, session: NukiSession, pin: int) -> None:
        creds = self._require_credentials()
        entries = await self._new_entries(session, pin)
        for entry in sorted(entries, key=lambda e: e.index):
            event = events.from_log(entry, self._lock_id, creds.auth_id, self._now())
            if event is not None:
                log.info(
                    "nuki.log_event",
                    lock_id=self._lock_id,
                    kind=event.kind.value,
                    index=entry.index,
                )
                self._events.put(event)

    async def _new_entries(self, session: NukiSession, pin: int) -> list[LogEntry]:
        batch = await session.log_entries(pin, count=LOG_BATCH)
        newest = max((e.index for e in batch), default=0)
        if self._log_mark is None:  # first run: start from now, do not replay history
            self._save_mark(newest)
            return []
        mark, found = self._log_mark, [e for e in batch if e.index > self._log_mark]
        for _ in range(LOG_MAX_BATCHES - 1):
            oldest = min((e.index for e in batch), default=0)
            if len(batch) < LOG_BATCH or oldest <= mark + 1:
                break
            batch = await session.log_entries(pin, start=oldest - 1, count=LOG_BATCH)
            found += [e for e in batch if e.index > mark]
        if newest > mark:
            self._save_mark(newest)
        return found

    def _save_mark(self, index: int) -> None:
        self._log_mark = index
        self._store.save(self._lock_id, LOG_MARK_KIND, {"index": index})

    def _heard(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        if not state_changed_beacon(advertisement) or self._events.closed:
            return
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._refresh_now())

    async def _refresh_now(self) -> None:
        try:
            await self.poll()
        except LockError as exc:
            log.info("nuki.refresh_failed", lock_id=self._lock_id, error=str(exc))

    def _forget_old_attempts(self) -> None:
        cutoff = self._now() - ATTEMPT_MEMORY
        for request_id in [r for r, a in self._pending.items() if a.started < cutoff]:
            del self._pending[request_id]

    def _require_credentials(self) -> Credentials:
        if self._credentials is None:
            raise NukiPairingNeededError(f"lock {self._lock_id}: driver not started")
        return self._credentials


def _ours(entry: LogEntry, auth_id: int, attempt: _Attempt) -> bool:
    if entry.type != LogEntryType.LOCK_ACTION or entry.auth_id != auth_id:
        return False
    action, _, _, completion = entry.lock_action()
    recent = (
        attempt.lock_time is None
        or entry.timestamp is None
        or entry.timestamp >= attempt.lock_time.replace(microsecond=0)
    )
    return action == attempt.action and completion == CompletionStatus.SUCCESS and recent


def _find(
    entries: list[KeypadEntry], spec: KeypadCodeSpec, *, same_window: bool
) -> KeypadEntry | None:
    for entry in entries:
        if entry.spec.code != spec.code or entry.spec.name != spec.name[:20]:
            continue
        if not same_window or (
            _seconds(entry.spec.allowed_from) == _seconds(spec.allowed_from)
            and _seconds(entry.spec.allowed_until) == _seconds(spec.allowed_until)
        ):
            return entry
    return None


def _seconds(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(microsecond=0)


def build(section: LockSection, context: DriverContext) -> NukiBleDriver:
    """The ``nuki_ble`` driver for ``section``."""
    options = parse_options(NukiBleOptions, section, context.source)
    pin = None
    if options.security_pin_file is not None:
        pin = read_security_pin(options.security_pin_file, context.source, section.id)
    return NukiBleDriver(
        section.id,
        options,
        transport=context.ble_transport(),
        store=context.credentials(),
        now=context.now,
        pin=pin,
    )


async def pair(section: LockSection, context: DriverContext, ui: PairUI) -> str:
    """Pair with the lock (in pairing mode) and store the credentials encrypted."""
    options = parse_options(NukiBleOptions, section, context.source)
    store = context.credentials()
    transport = context.ble_transport()
    ui.say("Hold the lock's button for 5 seconds until its LED ring lights (pairing mode).")
    await ui.ask("Press Enter when the ring is lit")
    app_id = int.from_bytes(os.urandom(4), "little")
    async with transport.connection(options.address) as client:
        creds = await pair_lock(client, name=options.app_name, app_id=app_id)
    store.save(section.id, CREDENTIAL_KIND, credentials_to_dict(creds))
    store.delete(section.id, LOG_MARK_KIND)
    log.info("nuki.paired", lock_id=section.id, auth_id=creds.auth_id)
    return f"paired with Nuki {options.address} as authorization {creds.auth_id}"
