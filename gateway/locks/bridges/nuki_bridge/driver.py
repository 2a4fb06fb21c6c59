"""The ``nuki_bridge`` LockDriver: one Nuki lock behind a Nuki Bridge, events from its reports.

Events are emitted on observed transitions, whatever reported them (a callback, a status read
or a lock action's outcome), so each change becomes one event.
"""

from __future__ import annotations

import hmac
import itertools
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime

import structlog

from ....config import LockSection
from ...callbacks import CALLBACK_SECRET_KEY, CallbackRegistry
from ...driver import (
    DoorState,
    EventKind,
    EventQueue,
    KeypadCode,
    KeypadUnsupportedError,
    LockDriver,
    LockEvent,
    LockJammedError,
    LockState,
    LockStatus,
    Trigger,
)
from ...registry import DriverContext, parse_options
from ..nuki_bridge_api import (
    BridgeFailedError,
    Device,
    DeviceState,
    LockAction,
    parse_callback,
)
from ..nuki_bridge_client import BridgeClient, BridgeRefusedError, BridgeUnreachableError
from .callbacks import CallbackRejectedError, callback_route, ensure_callback
from .options import (
    NukiBridgeOptions,
    bridge_client,
    configured_token,
)

log = structlog.get_logger(__name__)

VENDOR = "nuki"
# A lock action's callback arrives within seconds; past a minute it is someone else's move.
PENDING_TTL_SECONDS = 60.0
# Request ids remembered for retries: the coordinator retries one operation at a time.
RECENT_REQUESTS = 64
_BOLT_EVENTS = {
    LockState.UNLOCKED: EventKind.UNLOCKED,
    LockState.LOCKED: EventKind.LOCKED,
    LockState.JAMMED: EventKind.JAMMED,
}


class NukiBridgeLock:
    """One Nuki lock behind a Nuki Bridge, implementing LockDriver."""

    def __init__(
        self,
        lock_id: str,
        *,
        client: BridgeClient,
        nuki_id: int,
        device_type: int,
        now: Callable[[], datetime],
        registry: CallbackRegistry,
        callback_url: str | None = None,
        callback_secret: str | None = None,
    ) -> None:
        self._lock_id = lock_id
        self._client = client
        self._nuki_id, self._device_type = nuki_id, device_type
        self._now = now
        self._registry = registry
        self._callback_url, self._secret = callback_url, callback_secret
        self._events = EventQueue()
        self._serial = itertools.count(1)
        self._bolt = LockState.UNKNOWN
        self._door: DoorState | None = None
        self._low: bool | None = None
        self._battery: int | None = None
        self._pending: tuple[LockState, str, datetime] | None = None
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._confirmed: OrderedDict[str, None] = OrderedDict()
        self.callback_registered = False

    @property
    def lock_id(self) -> str:
        """The lock's id in the hub config."""
        return self._lock_id

    @property
    def vendor(self) -> str:
        """Always ``nuki``."""
        return VENDOR

    @property
    def has_keypad(self) -> bool:
        """False: the Bridge HTTP API cannot program keypad codes."""
        return False

    async def start(self) -> None:
        """Find the lock on the bridge, take its state, register the callback (idempotent)."""
        self._client.open()
        try:
            devices = await self._client.devices()
            device = find_device(devices, self._nuki_id, self._device_type)
            if device.last_known is not None:
                self._observe(device.last_known)
            if self._callback_url is not None:
                self._registry.register(self._lock_id, self.handle_callback)
                if await ensure_callback(self._client, self._callback_url, self._lock_id):
                    self.callback_registered = True
        except BaseException:
            # A failed start holds nothing: no pool, no route (the coordinator may retry).
            if self._callback_url is not None:
                self._registry.unregister(self._lock_id)
            await self._client.close()
            raise

    async def stop(self) -> None:
        """Stop taking callbacks, end the events, close the connection pool.

        The bridge keeps our callback URL: the next start finds it and adds none.
        """
        if self._callback_url is not None:
            self._registry.unregister(self._lock_id)
        self._events.close()
        await self._client.close()

    async def status(self) -> LockStatus:
        """Read /lockState (the bridge's view of the lock)."""
        state = await self._read()
        bolt = self._bolt if state.moving else state.bolt
        return LockStatus(bolt, state.battery_charge, state.door)

    async def unlock(self, request_id: str) -> None:
        """Unlock and wait for the lock's report; a retry never sends a second unlock."""
        await self._act(LockAction.UNLOCK, LockState.UNLOCKED, request_id)

    async def lock(self, request_id: str) -> None:
        """Lock and wait for the lock's report; a retry never sends a second lock."""
        await self._act(LockAction.LOCK, LockState.LOCKED, request_id)

    async def add_keypad_code(self, code: KeypadCode) -> int:
        """Not possible over the Bridge HTTP API."""
        raise KeypadUnsupportedError(
            f"lock {self._lock_id}: the Nuki Bridge HTTP API cannot program keypad codes"
        )

    async def remove_keypad_code(self, code_id: int) -> None:
        """Not possible over the Bridge HTTP API."""
        raise KeypadUnsupportedError(
            f"lock {self._lock_id}: the Nuki Bridge HTTP API cannot program keypad codes"
        )

    def events(self) -> AsyncIterator[LockEvent]:
        """Every state change, in order, until ``stop()``."""
        return self._events

    async def handle_callback(self, body: bytes, meta: Mapping[str, str]) -> None:
        """A POST from the bridge: check our secret, then take the reported state."""
        presented = meta.get(CALLBACK_SECRET_KEY, "").encode("utf-8", "surrogateescape")
        if self._secret is None or not hmac.compare_digest(presented, self._secret.encode()):
            raise CallbackRejectedError(f"lock {self._lock_id}: callback without our secret")
        report = parse_callback(body)
        if (report.nuki_id, report.device_type) == (self._nuki_id, self._device_type):
            self._observe(report.state)
        # Other devices on the same bridge report to every callback URL: not ours to take.

    async def _act(self, action: LockAction, target: LockState, request_id: str) -> None:
        if request_id in self._confirmed:
            return
        if request_id in self._sent:
            # A retry: the first try may have moved the bolt before its answer was lost.
            state = await self._read()
            if state.bolt is target:
                self._confirm(target, request_id)
                return
            if state.moving:
                raise BridgeUnreachableError(f"lock {self._lock_id} is still moving")
        _remember(self._sent, request_id)
        self._pending = (target, request_id, self._now())
        outcome = await self._client.lock_action(self._nuki_id, self._device_type, action)
        if outcome.success:
            self._confirm(target, request_id)
            return
        state = await self._read()
        if state.bolt is LockState.JAMMED:
            raise LockJammedError(f"lock {self._lock_id}: the motor is blocked")
        if state.bolt is target:
            self._confirm(target, request_id)
            return
        raise BridgeFailedError(
            f"lock {self._lock_id}: the bridge could not complete the action "
            "(is the lock within the bridge's Bluetooth range?)"
        )

    async def _read(self) -> DeviceState:
        state = await self._client.lock_state(self._nuki_id, self._device_type)
        self._observe(state)
        return state

    def _confirm(self, target: LockState, request_id: str) -> None:
        """The lock reported our action done: one event for it, unless a callback beat us."""
        if request_id in self._confirmed:
            return
        self._pending = None
        self._bolt = target
        _remember(self._confirmed, request_id)
        self._emit(_BOLT_EVENTS[target], trigger=Trigger.REMOTE, request_id=request_id)

    def _observe(self, state: DeviceState) -> None:
        """Take a reported state; emit an event for each change against what we knew."""
        if state.battery_charge is not None:
            self._battery = state.battery_charge
        bolt = state.bolt
        if not state.moving and bolt is not LockState.UNKNOWN and bolt is not self._bolt:
            first, self._bolt = self._bolt is LockState.UNKNOWN, bolt
            request_id = self._take_pending(bolt)
            if request_id is not None or not first:
                trigger = Trigger.REMOTE if request_id else Trigger.UNKNOWN
                self._emit(_BOLT_EVENTS[bolt], trigger=trigger, request_id=request_id)
        self._observe_door(state)
        if self._low is not None and state.battery_low != self._low:
            self._emit(EventKind.BATTERY, details=_battery_details(state))
        self._low = state.battery_low

    def _observe_door(self, state: DeviceState) -> None:
        door = state.door
        if door is DoorState.UNKNOWN:
            return
        if self._door is not None and door is not self._door:
            self._emit(EventKind.DOOR_OPENED if door is DoorState.OPEN else EventKind.DOOR_CLOSED)
        self._door = door

    def _take_pending(self, bolt: LockState) -> str | None:
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        target, request_id, since = pending
        fresh = (self._now() - since).total_seconds() <= PENDING_TTL_SECONDS
        if not fresh or bolt not in (target, LockState.JAMMED):
            return None
        _remember(self._confirmed, request_id)
        return request_id

    def _emit(
        self,
        kind: EventKind,
        *,
        trigger: Trigger = Trigger.UNKNOWN,
        request_id: str | None = None,
        details: dict[str, str | int | bool] | None = None,
    ) -> None:
        at = self._now()
        self._events.put(
            LockEvent(
                lock_id=self._lock_id,
                kind=kind,
                at=at,
                vendor=VENDOR,
                vendor_event_id=f"nuki-{self._nuki_id}-{at:%Y%m%dT%H%M%S%f}-{next(self._serial)}",
                trigger=trigger,
                request_id=request_id,
                battery_percent=self._battery,
                details=details or {},
            )
        )


def find_device(devices: list[Device], nuki_id: int, device_type: int) -> Device:
    """The configured device in /list, or BridgeRefusedError naming what the bridge has."""
    for device in devices:
        if device.nuki_id == nuki_id:
            if device.device_type != device_type:
                raise BridgeRefusedError(
                    f"nukiId {nuki_id} is deviceType {device.device_type}, not {device_type}: "
                    f"set device_type = {device.device_type}",
                    status=404,
                )
            return device
    found = ", ".join(f"{d.nuki_id} ({d.name!r}, type {d.device_type})" for d in devices)
    raise BridgeRefusedError(
        f"the bridge has no device with nukiId {nuki_id}; it has: {found or 'none'}", status=404
    )


def build(section: LockSection, context: DriverContext) -> LockDriver:
    """The driver for a ``nuki_bridge`` section (token from token_file or the pairing)."""
    options = parse_options(NukiBridgeOptions, section, context.source)
    token = configured_token(options, section, context)
    url, secret = callback_route(options.callback_url_base, section.id, context)
    return NukiBridgeLock(
        section.id,
        client=bridge_client(options, context, token),
        nuki_id=options.nuki_id,
        device_type=options.device_type,
        now=context.now,
        registry=context.callbacks,
        callback_url=url,
        callback_secret=secret,
    )


def _remember(recent: OrderedDict[str, None], request_id: str) -> None:
    recent[request_id] = None
    while len(recent) > RECENT_REQUESTS:
        recent.popitem(last=False)


def _battery_details(state: DeviceState) -> dict[str, str | int | bool]:
    details: dict[str, str | int | bool] = {"battery_critical": bool(state.battery_critical)}
    if state.keypad_battery_critical is not None:
        details["keypad_battery_critical"] = state.keypad_battery_critical
    return details
