"""One coordinator per lock: operations one at a time, timeouts, retries, a breaker, known state.

Timeouts and backoff run on the injected ``sleep`` and the breaker on the injected
``monotonic``, so a FakeClock drives every delay in tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from .breaker import BreakerState, CircuitBreaker
from .driver import (
    DoorState,
    EventKind,
    KeypadCode,
    LockDriver,
    LockError,
    LockEvent,
    LockJammedError,
    LockRefusedError,
    LockState,
    LockStatus,
    LockUnreachableError,
)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
log = structlog.get_logger(__name__)

# A BLE unlock is a connect (1-3 s, more on a busy adapter), a handshake and 1-2 s of motor; a
# bridge or cloud call adds a round trip. Past 15 s the lock is as good as gone for a courier.
UNLOCK_TIMEOUT = 15.0
LOCK_TIMEOUT = 15.0
# A status read moves no motor: a connect and one request.
STATUS_TIMEOUT = 8.0
# Programming a keypad code takes an authorised session and several frames (Nuki), or a slow
# vendor cloud call (Schlage).
KEYPAD_TIMEOUT = 20.0
# Starting may connect or subscribe to a bridge callback.
START_TIMEOUT = 20.0
# Stopping lets queued events reach on_event; a stuck callback must not hold up shutdown longer.
STOP_TIMEOUT = 5.0
# Three tries ride out a missed BLE advertisement or a busy bridge (503) while a courier waits.
UNREACHABLE_ATTEMPTS = 3
# Backoff 0.5 s, 1 s, 2 s... capped at 4 s: long enough for a bridge to finish its one request.
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 4.0
# Random extra delay so coordinators sharing a BLE adapter or a bridge do not retry in lockstep.
BACKOFF_JITTER = 0.5
# Five unreachable attempts in a row (two failed operations) mean the lock is gone, not busy.
BREAKER_THRESHOLD = 5
# Then calls fail fast for 30 s instead of tying up the adapter, and one trial call probes.
BREAKER_COOLDOWN = 30.0
# A driver that cannot start (bridge down, vendor cloud away at boot) is retried in the
# background from 5 s, doubling to 5 min: the hub runs its other locks meanwhile.
START_RETRY_INITIAL = 5.0
START_RETRY_MAX = 300.0

_BOLT = {
    EventKind.UNLOCKED: LockState.UNLOCKED,
    EventKind.LOCKED: LockState.LOCKED,
    EventKind.JAMMED: LockState.JAMMED,
}
_DOOR = {EventKind.DOOR_OPENED: DoorState.OPEN, EventKind.DOOR_CLOSED: DoorState.CLOSED}


class LockCircuitOpenError(LockUnreachableError):
    """The lock failed repeatedly; calls fail fast until the breaker's cool-down has passed."""


class LockCoordinator:
    """Owns one lock's driver: serialised calls with timeouts, retries, a breaker, known state."""

    def __init__(
        self,
        driver: LockDriver,
        *,
        on_event: Callable[[LockEvent], Awaitable[None]],
        sleep: Sleep = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._driver = driver
        self._on_event = on_event
        self._sleep = sleep
        self._busy = asyncio.Lock()
        self._breaker = CircuitBreaker(
            threshold=BREAKER_THRESHOLD, cooldown=BREAKER_COOLDOWN, monotonic=monotonic
        )
        self._bolt = LockState.UNKNOWN
        self._reachable = True
        self._battery: int | None = None
        self._door = DoorState.UNKNOWN
        self._consumer: asyncio.Task[None] | None = None
        self._delivering = False
        self._starter: asyncio.Task[None] | None = None
        self._driver_started = False

    @property
    def delivering(self) -> bool:
        """True while an event the driver gave is being handed to the hub."""
        return self._delivering

    @property
    def driver_started(self) -> bool:
        """True once the driver's ``start()`` succeeded."""
        return self._driver_started

    @property
    def lock_id(self) -> str:
        """The lock's id in the hub config."""
        return self._driver.lock_id

    @property
    def vendor(self) -> str:
        """The driver's vendor word."""
        return self._driver.vendor

    @property
    def has_keypad(self) -> bool:
        """Whether keypad codes can be programmed."""
        return self._driver.has_keypad

    @property
    def state(self) -> LockStatus:
        """The last known status (UNREACHABLE after the lock failed to answer)."""
        bolt = self._bolt if self._reachable else LockState.UNREACHABLE
        return LockStatus(bolt, self._battery, self._door)

    @property
    def breaker(self) -> BreakerState:
        """The circuit breaker's state."""
        return self._breaker.state

    async def start(self) -> None:
        """Start the driver and deliver its events to ``on_event`` in order.

        A driver that cannot start now (LockError or a timeout) leaves the lock unreachable
        and is retried in the background; the hub's other locks are not held up.
        """
        if self._consumer is not None:
            raise RuntimeError(f"lock {self.lock_id}: coordinator already started")
        self._consumer = asyncio.create_task(self._consume(), name=f"lock-events:{self.lock_id}")
        try:
            await self._start_driver()
        except LockError as exc:
            self._reachable = False
            log.warning("lock.start_failed", lock_id=self.lock_id, error=str(exc))
            self._starter = asyncio.create_task(
                self._keep_starting(), name=f"lock-start:{self.lock_id}"
            )

    async def _start_driver(self) -> None:
        try:
            await _within(self._sleep, START_TIMEOUT, self._driver.start())
        except TimeoutError:
            raise LockUnreachableError(f"lock {self.lock_id}: start timed out") from None
        self._driver_started = True

    async def _keep_starting(self) -> None:
        delay = START_RETRY_INITIAL
        while True:
            await self._sleep(delay)
            try:
                async with self._busy:
                    await self._start_driver()
            except LockError as exc:
                delay = min(delay * 2, START_RETRY_MAX)
                log.info("lock.start_retry", lock_id=self.lock_id, error=str(exc), next_in=delay)
                continue
            self._reachable = True
            log.info("lock.started", lock_id=self.lock_id)
            return

    async def stop(self) -> None:
        """Stop the driver and let queued events reach ``on_event`` (for up to STOP_TIMEOUT)."""
        starter, self._starter = self._starter, None
        if starter is not None:
            starter.cancel()
            await asyncio.gather(starter, return_exceptions=True)
        consumer, self._consumer = self._consumer, None
        try:
            await _within(self._sleep, STOP_TIMEOUT, self._driver.stop())
        except (TimeoutError, LockError) as exc:
            log.warning("lock.stop_failed", lock_id=self.lock_id, step="driver", error=repr(exc))
        self._driver_started = False
        if consumer is None:
            return
        try:
            await _within(self._sleep, STOP_TIMEOUT, consumer)  # cancels it when late
        except TimeoutError:
            log.warning("lock.stop_failed", lock_id=self.lock_id, step="events", error="timeout")

    async def unlock(self, request_id: str) -> None:
        """Unlock; the confirmation arrives as an UNLOCKED event."""
        await self._run("unlock", UNLOCK_TIMEOUT, partial(self._driver.unlock, request_id))

    async def lock(self, request_id: str) -> None:
        """Lock; the confirmation arrives as a LOCKED event."""
        await self._run("lock", LOCK_TIMEOUT, partial(self._driver.lock, request_id))

    async def status(self) -> LockStatus:
        """Read the lock's status, update the known state and return it."""
        status = await self._run("status", STATUS_TIMEOUT, self._driver.status)
        if status.state is LockState.UNREACHABLE:
            self._reachable = False  # a bridge answered for a lock that it cannot reach
        else:
            self._bolt = status.state
        if status.battery_percent is not None:
            self._battery = status.battery_percent
        self._door = status.door
        return self.state

    async def add_keypad_code(self, code: KeypadCode) -> int:
        """Program a keypad code; return the lock's id for it. Never retried (see below)."""
        # A timed-out add may have been applied: a retry would then fail as a duplicate and
        # hide the slot. The caller reconciles instead (window.status failed_on_lock).
        call = partial(self._driver.add_keypad_code, code)
        return await self._run("add_keypad_code", KEYPAD_TIMEOUT, call, attempts=1)

    async def remove_keypad_code(self, code_id: int) -> None:
        """Remove a keypad code; absent is not an error, so retrying is safe."""
        call = partial(self._driver.remove_keypad_code, code_id)
        await self._run("remove_keypad_code", KEYPAD_TIMEOUT, call)

    async def _run(
        self,
        operation: str,
        limit: float,
        call: Callable[[], Awaitable[T]],
        *,
        attempts: int = UNREACHABLE_ATTEMPTS,
    ) -> T:
        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=BACKOFF_INITIAL, max=BACKOFF_MAX)
            + wait_random(0, BACKOFF_JITTER),
            retry=retry_if_exception(_retryable),
            before_sleep=self._log_retry,
            reraise=True,
        )
        async with self._busy:
            result: T = await retrying(self._attempt, operation, limit, call)
            return result

    async def _attempt(self, operation: str, limit: float, call: Callable[[], Awaitable[T]]) -> T:
        if not self._breaker.allows():
            raise LockCircuitOpenError(f"lock {self.lock_id}: failing fast, breaker open")
        try:
            result = await _within(self._sleep, limit, call())
        except TimeoutError:
            self._unreachable()
            raise LockUnreachableError(
                f"lock {self.lock_id}: no answer to {operation} within {limit} s"
            ) from None
        except LockUnreachableError:
            self._unreachable()
            raise
        except LockJammedError:
            self._answered()
            self._bolt = LockState.JAMMED
            raise
        except LockRefusedError:
            self._answered()
            raise
        self._answered()
        return result

    def _answered(self) -> None:
        if self._breaker.state is not BreakerState.CLOSED:
            log.info("lock.breaker_closed", lock_id=self.lock_id)
        self._breaker.succeeded()
        self._reachable = True

    def _unreachable(self) -> None:
        was_open = self._breaker.state is BreakerState.OPEN
        self._breaker.failed()
        self._reachable = False
        if not was_open and self._breaker.state is BreakerState.OPEN:
            log.warning("lock.breaker_opened", lock_id=self.lock_id, cooldown=BREAKER_COOLDOWN)

    def _log_retry(self, attempt: RetryCallState) -> None:
        log.info(
            "lock.retry",
            lock_id=self.lock_id,
            operation=attempt.args[0],
            attempt=attempt.attempt_number,
            delay=round(attempt.upcoming_sleep, 3),
        )

    async def _consume(self) -> None:
        try:
            async for event in self._driver.events():
                self._delivering = True
                try:
                    self._apply(event)
                    await self._deliver(event)
                finally:
                    self._delivering = False
        except LockError as exc:
            log.warning("lock.events_failed", lock_id=self.lock_id, error=str(exc))
            self._reachable = False

    def _apply(self, event: LockEvent) -> None:
        self._reachable = True
        if event.kind in _BOLT:
            self._bolt = _BOLT[event.kind]
        elif event.kind in _DOOR:
            self._door = _DOOR[event.kind]
        if event.battery_percent is not None:
            self._battery = event.battery_percent

    async def _deliver(self, event: LockEvent) -> None:
        try:
            await self._on_event(event)
        except Exception:  # a failing consumer must not stop this lock's events
            log.exception(
                "lock.on_event_failed",
                lock_id=self.lock_id,
                kind=str(event.kind),
                vendor_event_id=event.vendor_event_id,
            )


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, LockUnreachableError) and not isinstance(exc, LockCircuitOpenError)


async def _within(sleep: Sleep, seconds: float, work: Awaitable[T]) -> T:
    """Await ``work`` for ``seconds`` on the ``sleep`` clock, then cancel it: TimeoutError."""
    task = asyncio.ensure_future(work)
    timer = asyncio.ensure_future(sleep(seconds))
    try:
        await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        finished = task.done()
        task.cancel()
        timer.cancel()
        await asyncio.gather(task, timer, return_exceptions=True)
    if not finished:
        raise TimeoutError
    return task.result()
