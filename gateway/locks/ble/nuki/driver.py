"""The ``nuki_ble`` LockDriver: a Nuki Smart Lock over the hub's shared BLE transport.

Credentials come from pairing (``enrolment.py``) and live encrypted in the CredentialStore.
Events come from our own completed lock actions, from the lock's state-changed beacon (then
Keyturner States and, with the security PIN, the lock's log, which attributes keypad unlocks
by code id). See docs/locks/nuki_ble.md.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import structlog
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData

from ....config import LockSection
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
from ...registry import DriverContext, parse_options
from ..transport import BleTransport
from . import events
from .attempts import Attempt, find_code, forget_old, went_through
from .beacon import state_changed_beacon
from .enrolment import pair
from .errors import (
    ErrorCode,
    NukiDuplicateCodeError,
    NukiJammedError,
    NukiKeypadUnsupportedError,
    NukiPairingNeededError,
    NukiRefusedError,
)
from .keypad import KeypadCodeSpec, code_problem
from .keyturner import KeyturnerStates, LockActionRequest
from .logbook import LogMark
from .messages import LockAction
from .options import CREDENTIAL_KIND, NukiBleOptions, credentials_from_dict, read_security_pin
from .session import MOTOR_TIMEOUT, RESPONSE_TIMEOUT, Credentials, Inbox, NukiSession

__all__ = ["NukiBleDriver", "NukiBleOptions", "build", "pair", "state_changed_beacon"]

log = structlog.get_logger(__name__)

_TARGET = {
    LockAction.UNLOCK: EventKind.UNLOCKED,
    LockAction.UNLATCH: EventKind.UNLOCKED,
    LockAction.LOCK: EventKind.LOCKED,
}


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
        self._pending: dict[str, Attempt] = {}
        self._log = LogMark(store, lock_id)
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
        self._log.load()
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
            if self._log.index is None:
                # Mark the log before the first code goes on: its first use comes after the
                # mark, so the first log read cannot take it for history.
                await self._log.new_entries(session, pin)
            try:
                code_id = await session.add_keypad_code(spec, pin)
            except NukiDuplicateCodeError:
                # Our own earlier attempt may have gone through before a link dropped.
                entry = find_code(await session.keypad_codes(pin), spec, same_window=True)
                if entry is None:
                    raise
                log.info("nuki.keypad_code_already_set", lock_id=self._lock_id)
                return entry.code_id
            if code_id is None:
                entry = find_code(await session.keypad_codes(pin), spec, same_window=False)
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
        forget_old(self._pending, self._now())
        async with self._busy, self._session() as session:
            before = await session.keyturner_states()
            attempt = self._pending.get(request_id)
            creds = self._require_credentials()
            if attempt is not None and await went_through(
                session, attempt, before, auth_id=creds.auth_id, pin=self._pin
            ):
                del self._pending[request_id]
                log.info("nuki.retry_found_done", lock_id=self._lock_id, request_id=request_id)
                self._last = before
                self._confirm(request_id, action)
                return
            self._observe(before)
            self._pending[request_id] = Attempt(action, before.current_time, self._now())
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
        entries = await self._log.new_entries(session, pin)
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

    def _require_credentials(self) -> Credentials:
        if self._credentials is None:
            raise NukiPairingNeededError(f"lock {self._lock_id}: driver not started")
        return self._credentials


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
