"""The yale_cloud driver: an August / Yale lock behind a Connect bridge, through the vendor cloud.

Commands go cloud -> bridge -> lock. Events come from the house activity feed, polled (PubNub
push is not used), turned into LockEvents once each (a persisted cursor), with the entry-code
slot for keypad unlocks and the hub's request id for its own remote operations.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal, TypeVar

import structlog
from pydantic import Field

# yalexs ships no type hints; this is its "refresh when closer than this to expiry" (7 days).
from yalexs.authenticator_common import (  # type: ignore[import-untyped]
    DEFAULT_RENEWAL_THRESHOLD,
)

from cloud_sync.protocol.tomlconfig import Section

from ....config import LockSection
from ...credentials import CredentialStore
from ...driver import (
    EventKind,
    EventQueue,
    KeypadCode,
    KeypadUnsupportedError,
    LockDriver,
    LockEvent,
    LockState,
    LockStatus,
    Trigger,
)
from ...registry import DriverContext, parse_options
from . import credentials
from .activities import VENDOR, CloudActivity, Cursor, to_event, token_expiry
from .cloud import (
    NOT_CARRIED_OUT,
    OPERATION_TIMEOUT,
    REQUEST_TIMEOUT,
    CloudClient,
    YaleCloudAuthError,
    YaleCloudError,
    YaleCloudRefusedError,
    YaleCloudUnreachableError,
)
from .ledger import Attempt, OperationLedger

T = TypeVar("T")
log = structlog.get_logger(__name__)

# yalexs polls the feed every 10 s and Home Assistant's August integration has done so for
# years without being blocked; without push the feed is our only event source, so 15 s by
# default and never faster than 10 s.
DEFAULT_POLL_INTERVAL = 15.0
MIN_POLL_INTERVAL = 10.0
MAX_POLL_INTERVAL = 300.0
# After failed polls (a 429, an outage) the wait doubles up to 5 minutes: back off, not hammer.
POLL_BACKOFF_MAX = 300.0
# yalexs's own page size for a routine poll: plenty for 15 s of one house's activity.
POLL_LIMIT = 10
# After a (re)start the hub may have missed a while: read further back, as yalexs does.
CATCH_UP_LIMIT = 50
# The battery moves slowly and the detail is the heavy call: read it at most hourly.
DETAIL_MAX_AGE = timedelta(hours=1)
# Refresh the token when it expires sooner than this (yalexs's threshold).
RENEWAL_THRESHOLD: timedelta = DEFAULT_RENEWAL_THRESHOLD
_TARGET = {EventKind.UNLOCKED: LockState.UNLOCKED, EventKind.LOCKED: LockState.LOCKED}


class YaleCloudOptions(Section):
    """``options`` of a ``yale_cloud`` lock."""

    august_lock_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    brand: Literal["august", "yale_access"] = "august"
    api_base: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    poll_interval: float = Field(
        default=DEFAULT_POLL_INTERVAL, ge=MIN_POLL_INTERVAL, le=MAX_POLL_INTERVAL
    )


class YaleCloudLock:
    """A cloud-connected August / Yale lock implementing LockDriver."""

    def __init__(
        self,
        lock_id: str,
        *,
        store: CredentialStore,
        options: YaleCloudOptions,
        now: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        request_timeout: float = REQUEST_TIMEOUT,
        operation_timeout: float = OPERATION_TIMEOUT,
    ) -> None:
        self._lock_id = lock_id
        self._store = store
        self._options = options
        self._now = now
        self._sleep = sleep
        self._timeouts = (request_timeout, operation_timeout)
        self._events = EventQueue()
        self._client: CloudClient | None = None
        self._creds: credentials.CloudCredentials | None = None
        self._cursor: Cursor | None = None
        self._caught_up = False
        self._ledger = OperationLedger()
        self._slots: dict[str, int] = {}
        self._battery: tuple[datetime, int] | None = None
        self._poll_lock = asyncio.Lock()
        self._refresh_lock = asyncio.Lock()
        self._poller: asyncio.Task[None] | None = None

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
        """False: yalexs reads entry codes but has no call to create or delete them."""
        return False

    async def start(self) -> None:
        """Load the paired token, catch up on the feed, start polling; auth errors raise."""
        creds = credentials.load(self._store, self._lock_id)
        wanted = self._options.august_lock_id
        if (wanted is not None and wanted != creds.august_lock_id) or (
            creds.brand != self._options.brand
        ):
            raise YaleCloudRefusedError(
                f"lock {self._lock_id} was paired with {creds.brand} lock {creds.august_lock_id}, "
                "which its options no longer name; pair it again"
            )
        self._creds = creds
        request_timeout, operation_timeout = self._timeouts
        self._client = CloudClient(
            creds.brand,
            api_base=self._options.api_base,
            request_timeout=request_timeout,
            operation_timeout=operation_timeout,
        )
        try:
            await self.poll(CATCH_UP_LIMIT)
        except YaleCloudUnreachableError as exc:
            log.warning("yale_cloud.start_degraded", lock_id=self._lock_id, error=str(exc))
        self._poller = asyncio.create_task(self._run(), name=f"yale-cloud:{self._lock_id}")

    async def stop(self) -> None:
        """Stop polling, close the session, end the events iterator."""
        poller, self._poller = self._poller, None
        if poller is not None:
            poller.cancel()
            with suppress(asyncio.CancelledError):
                await poller
        if self._client is not None:
            await self._client.close()
        self._events.close()

    async def status(self) -> LockStatus:
        """Bolt and door from the bridge; battery from the lock detail (at most hourly)."""
        client, creds = self._started()
        token = await self._token()
        bolt, door = await self._guard(client.status(token, creds.august_lock_id))
        now = self._now()
        if self._battery is None or now - self._battery[0] > DETAIL_MAX_AGE:
            detail = await self._guard(client.detail(token, creds.august_lock_id))
            self._battery = (now, detail.battery_percent)
        return LockStatus(bolt, self._battery[1], door)

    async def unlock(self, request_id: str) -> None:
        """Unlock through the bridge; a retry of ``request_id`` checks before resending."""
        await self._operate(EventKind.UNLOCKED, request_id)

    async def lock(self, request_id: str) -> None:
        """Lock through the bridge; a retry of ``request_id`` checks before resending."""
        await self._operate(EventKind.LOCKED, request_id)

    async def add_keypad_code(self, code: KeypadCode) -> int:
        """Unsupported: yalexs cannot create entry codes (use the yale_ble driver)."""
        raise KeypadUnsupportedError(
            f"lock {self._lock_id}: the Yale cloud driver cannot program entry codes"
        )

    async def remove_keypad_code(self, code_id: int) -> None:
        """Unsupported, as add_keypad_code."""
        raise KeypadUnsupportedError(
            f"lock {self._lock_id}: the Yale cloud driver cannot program entry codes"
        )

    def events(self) -> AsyncIterator[LockEvent]:
        """Lock and door events from the activity feed, each once, until ``stop()``."""
        return self._events

    async def poll(self, limit: int = POLL_LIMIT) -> int:
        """Read the feed's newest ``limit`` activities and emit the new ones; return how many."""
        client, creds = self._started()
        async with self._poll_lock:
            token = await self._token()
            found = await self._guard(client.activities(token, creds.house_id, limit))
            mine = [a for a in found if a.lock_id == creds.august_lock_id]
            cursor = self._cursor or credentials.load_cursor(self._store, self._lock_id)
            if cursor is None:
                now_ms = round(self._now().timestamp() * 1000)
                self._set_cursor(Cursor.baseline(mine, now_ms))
                self._caught_up = True
                return 0
            fresh = cursor.fresh(mine)
            if any(a.trigger is Trigger.KEYPAD for a in fresh):
                self._slots = await self._guard(client.pin_slots(token, creds.august_lock_id))
            for activity in fresh:
                self._emit(activity)
            self._set_cursor(cursor.after(fresh))
            self._caught_up = True
            return len(fresh)

    async def _operate(self, kind: EventKind, request_id: str) -> None:
        client, creds = self._started()
        previous = self._ledger.get(request_id)
        if previous is not None and await self._went_through(previous):
            log.info("yale_cloud.resend_skipped", lock_id=self._lock_id, request_id=request_id)
            return
        token = await self._token()
        self._ledger.remember(request_id, kind, self._now())
        unlock = kind is EventKind.UNLOCKED
        try:
            await self._guard(client.operate(token, creds.august_lock_id, unlock=unlock))
        except YaleCloudError as exc:
            if exc.status in NOT_CARRIED_OUT:
                self._ledger.forget(request_id)  # certainly not done: a retry may resend
            raise
        log.info("yale_cloud.operated", lock_id=self._lock_id, request_id=request_id, kind=kind)
        try:
            await self.poll()  # the confirmation, if the feed has it already
        except YaleCloudError as exc:
            log.info("yale_cloud.confirmation_deferred", lock_id=self._lock_id, error=str(exc))

    async def _went_through(self, attempt: Attempt) -> bool:
        """Did an earlier try (whose answer was lost) act? The feed first, then the bolt."""
        client, creds = self._started()
        if not attempt.confirmed:
            await self.poll()
        if attempt.confirmed:
            return True
        token = await self._token()
        bolt, _ = await self._guard(client.status(token, creds.august_lock_id))
        # Already in the wanted state: sending again could only act twice.
        return bolt is _TARGET[attempt.kind]

    def _emit(self, activity: CloudActivity) -> None:
        slot = None
        if activity.trigger is Trigger.KEYPAD and activity.user_id is not None:
            slot = self._slots.get(activity.user_id)
        request_id = self._ledger.claim(activity, self._started()[1].user_id)
        event = to_event(activity, self._lock_id, keypad_slot=slot, request_id=request_id)
        log.info("yale_cloud.event", lock_id=self._lock_id, kind=event.kind, trigger=event.trigger)
        self._events.put(event)

    def _set_cursor(self, cursor: Cursor) -> None:
        if cursor != self._cursor:
            credentials.save_cursor(self._store, self._lock_id, cursor)
        self._cursor = cursor

    async def _token(self) -> str:
        """The access token, refreshed first when yalexs would call it near expiry."""
        client, creds = self._started()
        if creds.expires_at - self._now() >= RENEWAL_THRESHOLD:
            return creds.access_token
        async with self._refresh_lock:
            creds = self._started()[1]
            if creds.expires_at - self._now() >= RENEWAL_THRESHOLD:
                return creds.access_token
            try:
                fresh = await self._guard(client.refresh(creds.access_token))
            except YaleCloudUnreachableError as exc:
                log.warning("yale_cloud.refresh_failed", lock_id=self._lock_id, error=str(exc))
                return creds.access_token  # still valid for a while: try again next call
            expires = token_expiry(fresh)
            if expires is None:
                log.warning("yale_cloud.refresh_unreadable", lock_id=self._lock_id)
                return creds.access_token
            creds = replace(creds, access_token=fresh, expires_at=expires)
            credentials.save(self._store, self._lock_id, creds)
            self._creds = creds
            log.info("yale_cloud.token_refreshed", lock_id=self._lock_id, expires=expires)
            return fresh

    async def _guard(self, call: Awaitable[T]) -> T:
        """Await a cloud call; after an auth failure, pick up a token paired since."""
        try:
            return await call
        except YaleCloudAuthError:
            with suppress(YaleCloudError):
                self._creds = credentials.load(self._store, self._lock_id)
            raise

    def _started(self) -> tuple[CloudClient, credentials.CloudCredentials]:
        if self._client is None or self._creds is None:
            raise YaleCloudUnreachableError(f"lock {self._lock_id}: driver not started")
        return self._client, self._creds

    async def _run(self) -> None:
        failures = 0
        while True:
            interval = self._options.poll_interval
            await self._sleep(min(interval * 2**failures, POLL_BACKOFF_MAX))
            try:
                await self.poll(POLL_LIMIT if self._caught_up else CATCH_UP_LIMIT)
            except YaleCloudError as exc:
                failures = min(failures + 1, 8)
                log.warning("yale_cloud.poll_failed", lock_id=self._lock_id, error=str(exc))
            # The poller is the only event source: one bad poll (a damaged cursor file, a full
            # disk) must not end it silently; it is logged and retried with backoff.
            except Exception as exc:  # noqa: BLE001
                failures = min(failures + 1, 8)
                log.error("yale_cloud.poll_crashed", lock_id=self._lock_id, error=repr(exc))
            else:
                failures = 0


def build(section: LockSection, context: DriverContext) -> LockDriver:
    """The ``yale_cloud`` driver for ``section`` (pair first: the token is in the store)."""
    options = parse_options(YaleCloudOptions, section, context.source)
    return YaleCloudLock(
        section.id,
        store=context.credentials(),
        options=options,
        now=context.now,
        sleep=context.sleep,
    )
