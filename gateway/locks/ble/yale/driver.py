"""The ``yale_ble`` LockDriver: one Yale / August lock over BLE, yalexs-ble's PushLock underneath.

yalexs-ble's PushLock owns the link: it connects (through bleak-retry-connector) to act, to
read, or when an advertisement says the state changed, and it drops the link a few seconds
after. We feed it the shared transport's advertisements, so state changes are noticed without
polling. The lock's own confirmations become LockEvents: the op-response of our lock/unlock,
and state changes that the activity log then explains (``attribution.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import structlog
from yalexs_ble import PushLock, serial_to_local_name

from ....config import LockSection
from ...credentials import CredentialStore
from ...driver import (
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
from ...registry import DriverContext, parse_options
from ..transport import BleTransport
from .attribution import ATTRIBUTION_WAIT, BOLT_EVENT, VENDOR, Change, LockReports
from .errors import translate
from .keypad import check_code, hub_slots
from .options import CREDENTIAL_KIND, OfflineCredentials, YaleBleOptions

log = structlog.get_logger(__name__)

# First contact: connect, handshake, lock info, battery, door, auto-lock and bolt reads, each
# paced 0.25 s apart by yalexs-ble: about 2 s; 15 s rides out a busy adapter's retries.
FIRST_UPDATE_TIMEOUT = 15.0
# On stop, yalexs-ble says goodbye to the lock (one frame) and disconnects in the background.
STOP_WAIT = 2.0
STOP_POLL = 0.01
# Request ids remembered so a coordinator retry of a confirmed command does not run it again.
REMEMBERED_REQUESTS = 64


class YaleBleDriver(LockReports):
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
        self._changes: list[Change] = []
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
        check_code(code, self._now)
        slots = hub_slots(self._options)
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
        kind = BOLT_EVENT[target]
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
            error = translate(self._lock_id, operation, exc)
            log.info("yale.failed", lock_id=self._lock_id, operation=operation, error=str(error))
            raise error from exc


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
