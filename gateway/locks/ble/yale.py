"""Yale / August locks over BLE through yalexs-ble, with the offline key and slot of the lock.

yalexs-ble's PushLock owns the link: it connects (through bleak-retry-connector) to act, to
read, or when an advertisement says the state changed, and it drops the link a few seconds
after. We feed it the shared transport's advertisements, so state changes are noticed without
polling. The lock's own confirmations become LockEvents: the op-response of our lock/unlock,
and state changes that the activity log then explains (keypad slot, thumb turn, auto-lock).
Keypad codes are always valid on these locks: the hub adds them when a window opens and clears
them when it ends (gateway/access/provisioning.py), in a slot range reserved for the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import Field
from yalexs_ble import (
    KEYPAD_MASTER_CODE_SLOT,
    AuthError,
    DoorActivity,
    DoorStatus,
    KeycodeError,
    LockActivity,
    LockOperationSource,
    OperationFailedError,
    PushLock,
    serial_to_local_name,
)
from yalexs_ble import LockState as YaleState
from yalexs_ble import LockStatus as YaleBolt
from yalexs_ble.const import MECHANICAL_OPERATION_ERRORS, ConnectionInfo, LockInfo, OperationError

from cloud_sync.protocol.tomlconfig import Section

from ...config import LockSection
from ..credentials import CredentialStore
from ..driver import (
    DoorState,
    DuplicateCodeError,
    EventKind,
    EventQueue,
    KeypadCode,
    KeypadFullError,
    KeypadUnsupportedError,
    LockDriver,
    LockError,
    LockEvent,
    LockJammedError,
    LockRefusedError,
    LockState,
    LockStatus,
    LockUnreachableError,
    Trigger,
)
from ..pairing import PairUI
from ..registry import DriverContext, parse_options
from .transport import BleTransport

log = structlog.get_logger(__name__)

VENDOR = "yale"
CREDENTIAL_KIND = "yale_ble"
# First contact: connect, handshake, lock info, battery, door, auto-lock and bolt reads, each
# paced 0.25 s apart by yalexs-ble: about 2 s; 15 s rides out a busy adapter's retries.
FIRST_UPDATE_TIMEOUT = 15.0
# yalexs-ble drains the activity log in the update that saw a change, one paced read per record
# (at most 32, 0.25 s apart): a change waits this long for the record that explains it.
ATTRIBUTION_WAIT = 10.0
# On stop, yalexs-ble says goodbye to the lock (one frame) and disconnects in the background.
STOP_WAIT = 2.0
STOP_POLL = 0.01
# yalexs-ble wraps an AuthError at most three levels deep (BluetoothError < Disconnected < Auth).
CAUSE_DEPTH = 8
# Request ids remembered so a coordinator retry of a confirmed command does not run it again.
REMEMBERED_REQUESTS = 64
# Yale keypads take 4-8 digit codes.
MIN_PIN_DIGITS, MAX_PIN_DIGITS = 4, 8
# A code may be programmed this much before its window opens (hub/cloud clock skew).
CODE_START_TOLERANCE = timedelta(minutes=1)
# The slot index of an offline key travels in one byte.
MAX_KEY_SLOT = 255
MAX_CODE_SLOT = 0xFFFF
_MAC = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"
# Offline keys are AES keys: 16 bytes on the locks we know; yalexs-ble takes any AES size.
_HEX_KEY = re.compile(r"^(?:[0-9a-fA-F]{16}){2,4}$")

_BOLT = {
    YaleBolt.LOCKED: LockState.LOCKED,
    YaleBolt.SECUREMODE: LockState.LOCKED,
    YaleBolt.UNLOCKED: LockState.UNLOCKED,
    YaleBolt.UNLATCHED: LockState.UNLOCKED,
    YaleBolt.JAMMED: LockState.JAMMED,
}
_DOOR = {
    DoorStatus.CLOSED: DoorState.CLOSED,
    DoorStatus.OPENED: DoorState.OPEN,
    DoorStatus.AJAR: DoorState.OPEN,
}
_EVENT = {LockState.LOCKED: EventKind.LOCKED, LockState.UNLOCKED: EventKind.UNLOCKED}
_KEYCODE_REFUSALS: dict[OperationError | int, type[LockRefusedError]] = {
    OperationError.KEYCODE_EXISTING_KEY: DuplicateCodeError,
    OperationError.KEYCODE_NOSPACE: KeypadFullError,
}
_TRIGGER = {
    LockOperationSource.PIN: Trigger.KEYPAD,
    LockOperationSource.MANUAL: Trigger.MANUAL,
    LockOperationSource.AUTO_LOCK: Trigger.AUTO,
}


class YaleBleOptions(Section):
    """``options`` of a ``yale_ble`` lock (the offline key and slot come from pairing)."""

    address: str = Field(pattern=_MAC)
    serial: str | None = Field(default=None, min_length=7, max_length=32)
    has_keypad: bool = False
    # Keypad slots the hub may use; keep them clear of codes made in the Yale/August app.
    keypad_slot_first: int = Field(default=100, ge=1, le=MAX_CODE_SLOT)
    keypad_slot_count: int = Field(default=20, ge=1, le=250)
    cloud_api_base: str | None = None


@dataclass(frozen=True, slots=True)
class OfflineCredentials:
    """What pairing stores: the offline key (hex) and its slot, and the lock's serial/name."""

    key: str
    slot: int
    serial: str
    name: str

    @classmethod
    def checked(cls, key: str, slot: int, serial: str, name: str) -> OfflineCredentials:
        """Validated credentials; LockRefusedError naming what is wrong."""
        if not _HEX_KEY.match(key):
            raise LockRefusedError("an offline key is 32 hex digits (16 bytes)")
        if not 0 <= slot <= MAX_KEY_SLOT:
            raise LockRefusedError(f"an offline key slot is 0-{MAX_KEY_SLOT}")
        return cls(key.lower(), slot, serial, name)

    @classmethod
    def from_store(cls, data: dict[str, Any]) -> OfflineCredentials:
        """Credentials read back from the CredentialStore."""
        try:
            return cls.checked(str(data["key"]), int(data["slot"]), data["serial"], data["name"])
        except (KeyError, TypeError, ValueError):
            raise LockRefusedError("stored Yale credentials are damaged; pair again") from None

    def to_store(self) -> dict[str, Any]:
        """The JSON object the CredentialStore seals."""
        return {"key": self.key, "slot": self.slot, "serial": self.serial, "name": self.name}


@dataclass(slots=True)
class _Change:
    """A bolt change the lock reported that waits for the activity record explaining it."""

    kind: EventKind
    at: datetime
    timer: asyncio.TimerHandle | None = None


class YaleBleDriver:
    """LockDriver for one Yale / August lock over BLE (yalexs-ble's PushLock underneath)."""

    def __init__(
        self,
        lock_id: str,
        options: YaleBleOptions,
        *,
        transport: BleTransport,
        credentials: CredentialStore,
        now: Callable[[], datetime],
        attribution_wait: float = ATTRIBUTION_WAIT,
    ) -> None:
        self._lock_id = lock_id
        self._options = options
        self._transport = transport
        self._credentials = credentials
        self._now = now
        self._attribution_wait = attribution_wait
        self._events = EventQueue()
        self._serial = itertools.count(1)
        self._push: PushLock | None = None
        self._stoppers: list[Callable[[], None]] = []
        self._bolt = LockState.UNKNOWN
        self._door = DoorState.UNKNOWN
        self._battery: int | None = None
        self._in_flight = False
        self._requests: OrderedDict[str, bool] = OrderedDict()  # request id -> confirmed
        self._changes: list[_Change] = []
        self._unexplained: dict[EventKind, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def lock_id(self) -> str:
        """The lock's id in the hub config."""
        return self._lock_id

    @property
    def vendor(self) -> str:
        """Always ``yale``."""
        return VENDOR

    @property
    def has_keypad(self) -> bool:
        """Whether the config says a keypad is paired with this lock."""
        return self._options.has_keypad

    async def start(self) -> None:
        """Watch the lock's advertisements and read it once; LockRefusedError if not paired."""
        if self._push is not None:
            return  # started already (start is idempotent, as the coordinator may call it)
        stored = self._credentials.load(self._lock_id, CREDENTIAL_KIND)
        if stored is None:
            raise LockRefusedError(
                f"lock {self._lock_id} is not paired: lockhub gateway pair yale_ble --lock "
                f"{self._lock_id}"
            )
        creds = OfflineCredentials.from_store(stored)
        address = self._options.address.upper()
        serial = self._options.serial or creds.serial
        push = PushLock(
            local_name=serial_to_local_name(serial) if len(serial) >= 7 else None,
            address=address,
            key=creds.key,
            key_index=creds.slot,
        )
        self._push = push
        self._stoppers = [
            push.register_callback(self._on_state),
            push.register_activity_callback(self._on_activity),
            await push.start(),
            self._transport.watch(address, push.update_advertisement),
        ]
        try:
            await self._transport.start()
            await self._first_read(push, address)
        except LockError:
            # No adapter, or a wrong key: nothing keeps knocking; a later start() tries again.
            await self._release()
            self._push = None
            raise

    async def _first_read(self, push: PushLock, address: str) -> None:
        seen = self._transport.last_seen(address)
        if seen is not None:
            push.update_advertisement(*seen)
        try:
            async with self._boundary("start"):
                # Not heard yet: give up the first-update wait now; advertisements drive it.
                await push.wait_for_first_update(FIRST_UPDATE_TIMEOUT if seen else 0)
                await push.validate()  # the second read primes the activity log
        except LockUnreachableError as exc:
            # Out of range for now is not a failure to start: its advertisements will come.
            log.warning("yale.start_unreachable", lock_id=self._lock_id, error=str(exc))

    async def stop(self) -> None:
        """Stop watching, let yalexs-ble disconnect, report waiting changes, end the events."""
        await self._release()
        for change in list(self._changes):
            self._explain(change, Trigger.UNKNOWN, None)
        self._events.close()

    async def _release(self) -> None:
        stoppers, self._stoppers = self._stoppers, []
        for stopper in reversed(stoppers):
            stopper()
        push = self._push
        if push is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + STOP_WAIT
            # PushLock disconnects in a task of its own and offers nothing to await.
            while push.is_connected and loop.time() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(STOP_POLL)

    async def status(self) -> LockStatus:
        """Read bolt, door and battery from the lock."""
        push = self._started()
        async with self._boundary("status"):
            await push.validate()
        return self._snapshot(push.lock_state)

    async def unlock(self, request_id: str) -> None:
        """Unlock; the UNLOCKED event carries ``request_id`` (once, even across retries)."""
        await self._operate(request_id, LockState.UNLOCKED)

    async def lock(self, request_id: str) -> None:
        """Lock; the LOCKED event carries ``request_id``."""
        await self._operate(request_id, LockState.LOCKED)

    async def add_keypad_code(self, code: KeypadCode) -> int:
        """Program ``code`` (always valid on the lock) into the first free hub slot."""
        push = self._keypad()
        self._check_code(code)
        slots = range(
            self._options.keypad_slot_first,
            min(
                self._options.keypad_slot_first + self._options.keypad_slot_count, MAX_CODE_SLOT + 1
            ),
        )
        async with self._boundary("add_keypad_code"):
            free = None
            for slot in slots:
                held = await push.get_keycode(slot)
                if held is not None and hmac.compare_digest(held, code.code):
                    raise DuplicateCodeError(f"lock {self._lock_id}: the code is already set")
                if held is None:
                    free = slot
                    break
            if free is None:
                raise KeypadFullError(
                    f"lock {self._lock_id}: the hub's {len(slots)} slots are used"
                )
            await push.set_keycode(free, code.code)
        log.info("yale.code_set", lock_id=self._lock_id, slot=free)
        return free

    async def remove_keypad_code(self, code_id: int) -> None:
        """Clear slot ``code_id`` (one of the hub's slots); an empty slot is not an error."""
        push = self._keypad()
        first = self._options.keypad_slot_first
        if not first <= code_id < first + self._options.keypad_slot_count:
            raise LockRefusedError(f"lock {self._lock_id}: slot {code_id} is not the hub's")
        async with self._boundary("remove_keypad_code"):
            await push.clear_keycode(code_id)
        log.info("yale.code_cleared", lock_id=self._lock_id, slot=code_id)

    def events(self) -> AsyncIterator[LockEvent]:
        """Every event in order until ``stop()``."""
        return self._events

    # -- commands ------------------------------------------------------------------------

    async def _operate(self, request_id: str, target: LockState) -> None:
        push = self._started()
        kind = _EVENT[target]
        confirmed = self._requests.get(request_id)
        if confirmed:
            return  # the lock confirmed it; the answer to the caller was lost
        self._in_flight = True
        try:
            if confirmed is False:
                # An earlier try of this request ended without an answer: it may have run.
                async with self._boundary("status"):
                    await push.validate()
                if self._bolt is target:
                    self._confirm(request_id, kind, {"confirmed_by": "status"})
                    return
            self._remember(request_id, confirmed=False)
            try:
                async with self._boundary(kind.value):
                    await (push.unlock() if target is LockState.UNLOCKED else push.lock())
            except LockJammedError:
                self._remember(request_id, confirmed=True)
                self._bolt = LockState.JAMMED
                self._emit(EventKind.JAMMED, Trigger.REMOTE, request_id=request_id)
                raise
        finally:
            self._in_flight = False
        self._confirm(request_id, kind, {})

    def _confirm(
        self, request_id: str, kind: EventKind, details: dict[str, str | int | bool]
    ) -> None:
        self._remember(request_id, confirmed=True)
        self._bolt = LockState.UNLOCKED if kind is EventKind.UNLOCKED else LockState.LOCKED
        for change in [c for c in self._changes if c.kind is kind]:
            self._drop_change(change)  # our command explains it
        self._emit(kind, Trigger.REMOTE, request_id=request_id, details=details)

    def _remember(self, request_id: str, *, confirmed: bool) -> None:
        self._requests[request_id] = confirmed
        self._requests.move_to_end(request_id)
        while len(self._requests) > REMEMBERED_REQUESTS:
            self._requests.popitem(last=False)

    def _check_code(self, code: KeypadCode) -> None:
        if not (code.code.isascii() and code.code.isdigit()):
            raise LockRefusedError("a keypad code must be digits only")
        if not MIN_PIN_DIGITS <= len(code.code) <= MAX_PIN_DIGITS:
            raise LockRefusedError(
                f"a Yale keypad code has {MIN_PIN_DIGITS}-{MAX_PIN_DIGITS} digits"
            )
        now = self._now()
        if code.valid_until <= now:
            raise LockRefusedError("the code's window has already ended")
        if code.valid_from > now + CODE_START_TOLERANCE:
            # The lock would accept it at once: Yale codes carry no schedule over BLE.
            raise LockRefusedError("Yale codes are always valid: add them when the window opens")

    def _started(self) -> PushLock:
        if self._push is None or self._events.closed:
            raise LockUnreachableError(f"lock {self._lock_id}: driver not started")
        return self._push

    def _keypad(self) -> PushLock:
        if not self._options.has_keypad:
            raise KeypadUnsupportedError(f"lock {self._lock_id} has no keypad (has_keypad)")
        return self._started()

    @contextlib.asynccontextmanager
    async def _boundary(self, operation: str) -> AsyncIterator[None]:
        try:
            yield
        except LockError:
            raise
        except Exception as exc:
            error = _translate(self._lock_id, operation, exc)
            log.info("yale.failed", lock_id=self._lock_id, operation=operation, error=str(error))
            raise error from exc

    # -- what the lock reports -----------------------------------------------------------

    def _snapshot(self, state: YaleState | None) -> LockStatus:
        if state is not None:
            self._absorb(state)
        return LockStatus(self._bolt, self._battery, self._door)

    def _on_state(self, state: YaleState, _info: LockInfo, _conn: ConnectionInfo) -> None:
        bolt, door, battery = self._bolt, self._door, self._battery
        self._absorb(state)
        if door is not DoorState.UNKNOWN and self._door is not door:
            opened = self._door is DoorState.OPEN
            self._emit(EventKind.DOOR_OPENED if opened else EventKind.DOOR_CLOSED, Trigger.UNKNOWN)
            self._read_log_soon()  # a door opened after a keypad unlock: read who it was
        if battery is not None and self._battery != battery:
            self._emit(EventKind.BATTERY, Trigger.UNKNOWN, battery_percent=self._battery)
        if self._in_flight or bolt is LockState.UNKNOWN or self._bolt is bolt:
            return  # our own command reports it, or this is the first reading
        if self._bolt is LockState.JAMMED:
            self._emit(EventKind.JAMMED, Trigger.UNKNOWN)
        elif self._bolt in _EVENT:
            self._await_record(_EVENT[self._bolt])

    def _absorb(self, state: YaleState) -> None:
        self._bolt = _BOLT.get(state.lock, self._bolt)
        self._door = _DOOR.get(state.door, self._door)
        if state.battery is not None:
            self._battery = state.battery.percentage

    def _await_record(self, kind: EventKind) -> None:
        change = _Change(kind, self._now())
        loop = asyncio.get_running_loop()
        change.timer = loop.call_later(
            self._attribution_wait, self._explain, change, Trigger.UNKNOWN, None
        )
        self._changes.append(change)
        self._read_log_soon()

    def _read_log_soon(self) -> None:
        """Ask yalexs-ble for an update: it drains the activity log after a change it saw."""
        push = self._push
        if push is None:
            return
        task = asyncio.get_running_loop().create_task(push.update())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_activity(self, activity: LockActivity | DoorActivity) -> None:
        if not isinstance(activity, LockActivity) or activity.source not in _TRIGGER:
            return  # door records repeat the door sensor; remote ones are commands we report
        kind = _EVENT.get(_BOLT.get(activity.status, LockState.UNKNOWN))
        if kind is None:
            return
        trigger = _TRIGGER[activity.source]
        slot = activity.slot if trigger is Trigger.KEYPAD else None
        change = next((c for c in self._changes if c.kind is kind), None)
        if change is not None:
            self._explain(change, trigger, slot)
        elif self._unexplained.get(kind):
            self._unexplained[kind] -= 1  # a late record for a change already reported
        elif trigger is Trigger.KEYPAD:
            # A keypad unlock the bolt readings missed (relocked in between): still a delivery.
            self._emit(kind, trigger, keypad_code_id=_code_id(slot))

    def _explain(self, change: _Change, trigger: Trigger, slot: int | None) -> None:
        self._drop_change(change)
        if trigger is Trigger.UNKNOWN:
            self._unexplained[change.kind] = self._unexplained.get(change.kind, 0) + 1
        details: dict[str, str | int | bool] = {}
        if slot == KEYPAD_MASTER_CODE_SLOT:
            details["master_code"] = True
        self._emit(
            change.kind, trigger, at=change.at, keypad_code_id=_code_id(slot), details=details
        )

    def _drop_change(self, change: _Change) -> None:
        self._changes.remove(change)
        if change.timer is not None:
            change.timer.cancel()

    def _emit(
        self,
        kind: EventKind,
        trigger: Trigger,
        *,
        at: datetime | None = None,
        request_id: str | None = None,
        keypad_code_id: int | None = None,
        battery_percent: int | None = None,
        details: dict[str, str | int | bool] | None = None,
    ) -> None:
        moment = at or self._now()
        log.info("yale.event", lock_id=self._lock_id, kind=str(kind), trigger=str(trigger))
        self._events.put(
            LockEvent(
                lock_id=self._lock_id,
                kind=kind,
                at=moment,
                vendor=VENDOR,
                vendor_event_id=f"{VENDOR}-{int(moment.timestamp() * 1000)}-{next(self._serial)}",
                trigger=trigger,
                keypad_code_id=keypad_code_id,
                request_id=request_id,
                battery_percent=battery_percent,
                details=details or {},
            )
        )


def _code_id(slot: int | None) -> int | None:
    return None if slot is None or slot == KEYPAD_MASTER_CODE_SLOT else slot


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    link: BaseException | None = exc
    depth = 0
    while link is not None and depth < CAUSE_DEPTH:
        if isinstance(link, kind):
            return True
        link, depth = link.__cause__ or link.__context__, depth + 1
    return False


def _translate(lock_id: str, operation: str, exc: Exception) -> LockError:
    """yalexs-ble's and bleak's errors as ours, grouped by what the caller should do."""
    if _caused_by(exc, AuthError):
        return LockRefusedError(
            f"lock {lock_id}: the lock rejected the offline key or slot; pair it again: "
            f"lockhub gateway pair yale_ble --lock {lock_id}"
        )
    if isinstance(exc, OperationFailedError):
        if exc.error in MECHANICAL_OPERATION_ERRORS:
            return LockJammedError(f"lock {lock_id}: the bolt did not move ({operation})")
        return LockRefusedError(f"lock {lock_id}: {operation} refused: {exc}")
    if isinstance(exc, KeycodeError):
        refusal = _KEYCODE_REFUSALS.get(exc.error, LockRefusedError)
        return refusal(f"lock {lock_id}: {operation} refused: {exc}")
    # Bleak and connect errors, timeouts, dropped links, an operation whose answer was lost.
    return LockUnreachableError(f"lock {lock_id}: {operation} failed: {type(exc).__name__}")


def build(section: LockSection, context: DriverContext) -> LockDriver:
    """The ``yale_ble`` driver for ``section``."""
    options = parse_options(YaleBleOptions, section, context.source)
    return YaleBleDriver(
        section.id,
        options,
        transport=context.ble_transport(),
        credentials=context.credentials(),
        now=context.now,
    )


async def pair(section: LockSection, context: DriverContext, ui: PairUI) -> str:
    """Store the lock's offline key and slot: typed in, or fetched from the Yale/August cloud."""
    options = parse_options(YaleBleOptions, section, context.source)
    store = context.credentials()
    ui.say("A Yale/August lock works offline with an offline key and its slot.")
    key = await ui.ask(
        "Offline key (32 hex digits) if you have it, or Enter to fetch it from your account",
        secret=True,
    )
    if key.strip():
        creds = await _typed(ui, key.strip(), options, section.id)
    else:
        creds = await _fetched(ui, options)
    store.save(section.id, CREDENTIAL_KIND, creds.to_store())
    log.info("yale.paired", lock_id=section.id, slot=creds.slot)
    return f"yale_ble {section.id}: offline key for slot {creds.slot} stored ({creds.name})"


async def _typed(ui: PairUI, key: str, options: YaleBleOptions, name: str) -> OfflineCredentials:
    answer = (await ui.ask(f"Offline key slot (0-{MAX_KEY_SLOT})")).strip()
    if not answer.isdigit():
        raise LockRefusedError(f"an offline key slot is a number 0-{MAX_KEY_SLOT}")
    return OfflineCredentials.checked(key, int(answer), options.serial or "", name)


async def _fetched(ui: PairUI, options: YaleBleOptions) -> OfflineCredentials:
    # Imported here: only pairing needs the cloud client (and yalexs with it).
    from ..bridges.yale_cloud import fetch_offline_key  # noqa: PLC0415

    serial = options.serial or (await ui.ask("The lock's serial number (in the app)")).strip()
    offline = await fetch_offline_key(ui, serial=serial, api_base=options.cloud_api_base)
    return OfflineCredentials.checked(offline.key, offline.slot, offline.serial, offline.name)
