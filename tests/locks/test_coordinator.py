"""LockCoordinator: serialisation, timeouts, retries, breaker, state mapping, event delivery."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from structlog.testing import capture_logs

from gateway.locks import (
    BreakerState,
    DoorState,
    EventKind,
    LockCircuitOpenError,
    LockCoordinator,
    LockEvent,
    LockJammedError,
    LockRefusedError,
    LockState,
    LockStatus,
    LockUnreachableError,
    SimLock,
)
from gateway.locks.coordinator import (
    BACKOFF_INITIAL,
    BACKOFF_JITTER,
    BREAKER_COOLDOWN,
    START_RETRY_INITIAL,
    START_RETRY_MAX,
    START_TIMEOUT,
    STOP_TIMEOUT,
    UNLOCK_TIMEOUT,
    UNREACHABLE_ATTEMPTS,
)
from gateway.testing import FakeClock

from .conftest import ProbeLock, keypad_code, run_virtual, settle

Handler = Callable[[LockEvent], Awaitable[None]]


class Recorder:
    """An on_event callback that keeps what it got."""

    def __init__(self) -> None:
        self.events: list[LockEvent] = []

    async def __call__(self, event: LockEvent) -> None:
        self.events.append(event)


def probe(clock: FakeClock, **options: float) -> ProbeLock:
    return ProbeLock("front-door", now=clock.now, sleep=clock.sleep, **options)


def coordinate(
    clock: FakeClock, driver: SimLock, on_event: Handler | None = None
) -> LockCoordinator:
    return LockCoordinator(
        driver, on_event=on_event or Recorder(), sleep=clock.sleep, monotonic=clock.monotonic
    )


async def test_mirrors_the_driver(fake_clock: FakeClock) -> None:
    lock = SimLock("back", now=fake_clock.now, has_keypad=False)
    coordinator = coordinate(fake_clock, lock)
    assert (coordinator.lock_id, coordinator.vendor, coordinator.has_keypad) == (
        "back",
        "sim",
        False,
    )
    assert coordinator.state == LockStatus(LockState.UNKNOWN)
    assert coordinator.breaker is BreakerState.CLOSED


async def test_events_reach_on_event_in_order_and_update_state(fake_clock: FakeClock) -> None:
    lock = probe(fake_clock)
    recorder = Recorder()
    coordinator = coordinate(fake_clock, lock, recorder)
    await coordinator.start()
    await coordinator.unlock("req-1")
    lock.open_door()
    lock.set_battery(15)
    await settle()
    assert coordinator.state == LockStatus(LockState.UNLOCKED, 15, DoorState.OPEN)
    assert coordinator.state.battery_low
    lock.close_door()
    await settle()
    fake_clock.advance(5)
    await settle()
    assert coordinator.state == LockStatus(LockState.LOCKED, 15, DoorState.CLOSED)
    await coordinator.stop()
    assert [e.kind for e in recorder.events] == [
        EventKind.UNLOCKED,
        EventKind.DOOR_OPENED,
        EventKind.BATTERY,
        EventKind.DOOR_CLOSED,
        EventKind.LOCKED,
    ]
    assert recorder.events[0].request_id == "req-1"


async def test_stop_delivers_queued_events(fake_clock: FakeClock) -> None:
    lock = probe(fake_clock)
    recorder = Recorder()
    coordinator = coordinate(fake_clock, lock, recorder)
    await coordinator.start()
    lock.turn_thumb()
    lock.set_battery(90)
    await coordinator.stop()
    assert [e.kind for e in recorder.events] == [EventKind.UNLOCKED, EventKind.BATTERY]


async def test_start_twice_is_a_bug(fake_clock: FakeClock) -> None:
    coordinator = coordinate(fake_clock, probe(fake_clock))
    await coordinator.start()
    with pytest.raises(RuntimeError, match="already started"):
        await coordinator.start()
    await coordinator.stop()


async def test_stop_without_start(fake_clock: FakeClock) -> None:
    await coordinate(fake_clock, probe(fake_clock)).stop()


async def test_status_refreshes_the_known_state(fake_clock: FakeClock) -> None:
    lock = probe(fake_clock, battery_percent=40)
    coordinator = coordinate(fake_clock, lock)
    assert await coordinator.status() == LockStatus(LockState.LOCKED, 40, DoorState.CLOSED)
    assert coordinator.state == LockStatus(LockState.LOCKED, 40, DoorState.CLOSED)


class BridgedLock(ProbeLock):
    """A lock behind a bridge that answers for it, without a battery reading."""

    reading = LockStatus(LockState.UNREACHABLE)

    async def status(self) -> LockStatus:
        return self.reading


async def test_status_from_a_bridge_that_lost_the_lock(fake_clock: FakeClock) -> None:
    lock = BridgedLock("x", now=fake_clock.now, battery_percent=50)
    coordinator = coordinate(fake_clock, lock)
    await coordinator.status()
    lock.reading = LockStatus(LockState.LOCKED, None, DoorState.CLOSED)
    await coordinator.status()
    lock.reading = LockStatus(LockState.UNREACHABLE)
    assert await coordinator.status() == LockStatus(LockState.UNREACHABLE, None, DoorState.UNKNOWN)


async def test_concurrent_operations_never_overlap(fake_clock: FakeClock) -> None:
    # Real sleeps of a few ms: the point is true interleaving on the event loop.
    lock = ProbeLock("x", now=fake_clock.now, latency=0.003)
    coordinator = LockCoordinator(lock, on_event=Recorder())
    await asyncio.gather(
        coordinator.unlock("a"),
        coordinator.unlock("b"),
        coordinator.status(),
        coordinator.lock("c"),
        coordinator.add_keypad_code(keypad_code(fake_clock)),
        coordinator.remove_keypad_code(1),
    )
    assert lock.max_active == 1
    assert lock.order == [
        "unlock",
        "unlock",
        "status",
        "lock",
        "add_keypad_code",
        "remove_keypad_code",
    ]
    await lock.stop()


class HangingLock(ProbeLock):
    """A lock whose unlock and start never answer."""

    cancelled = 0
    start_hangs = False

    async def unlock(self, request_id: str) -> None:
        self.calls["unlock"] += 1
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled += 1

    async def start(self) -> None:
        if self.start_hangs:
            await asyncio.Event().wait()


async def test_a_lock_that_never_answers_times_out(fake_clock: FakeClock) -> None:
    lock = HangingLock("x", now=fake_clock.now, sleep=fake_clock.sleep)
    coordinator = coordinate(fake_clock, lock)
    with pytest.raises(LockUnreachableError, match=f"no answer to unlock within {UNLOCK_TIMEOUT}"):
        await run_virtual(fake_clock, coordinator.unlock("r"))
    assert lock.calls["unlock"] == lock.cancelled == UNREACHABLE_ATTEMPTS
    assert fake_clock.monotonic() >= UNREACHABLE_ATTEMPTS * UNLOCK_TIMEOUT
    assert coordinator.state.state is LockState.UNREACHABLE


async def test_a_driver_that_cannot_start_is_retried_in_the_background(
    fake_clock: FakeClock,
) -> None:
    lock = HangingLock("x", now=fake_clock.now)
    lock.start_hangs = True
    coordinator = coordinate(fake_clock, lock)
    await run_virtual(fake_clock, coordinator.start())
    assert fake_clock.monotonic() >= START_TIMEOUT
    assert not coordinator.driver_started
    assert coordinator.state.state is LockState.UNREACHABLE
    lock.start_hangs = False  # the bridge came back
    for _ in range(200):
        if coordinator.driver_started:
            break
        await settle()
        fake_clock.advance(1.0)
    assert coordinator.driver_started
    assert fake_clock.monotonic() >= START_TIMEOUT + START_RETRY_INITIAL
    assert coordinator.state.state is not LockState.UNREACHABLE
    await coordinator.stop()
    assert not coordinator.driver_started


async def test_stop_cancels_the_start_retries(fake_clock: FakeClock) -> None:
    lock = HangingLock("x", now=fake_clock.now)
    lock.start_hangs = True
    coordinator = coordinate(fake_clock, lock)
    await run_virtual(fake_clock, coordinator.start())
    await coordinator.stop()
    fake_clock.advance(START_RETRY_MAX)
    await settle()
    assert not coordinator.driver_started


async def test_unreachable_is_retried_with_backoff(fake_clock: FakeClock) -> None:
    lock = probe(fake_clock)
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        await fake_clock.sleep(seconds)

    coordinator = LockCoordinator(
        lock, on_event=Recorder(), sleep=sleep, monotonic=fake_clock.monotonic
    )
    lock.fail_next(UNREACHABLE_ATTEMPTS - 1)
    with capture_logs() as logs:
        await run_virtual(fake_clock, coordinator.unlock("r"), step=0.05)
    assert lock.calls["unlock"] == UNREACHABLE_ATTEMPTS
    backoff = [d for d in delays if d != UNLOCK_TIMEOUT]
    assert len(backoff) == 2
    for attempt, delay in enumerate(backoff):
        low = BACKOFF_INITIAL * 2**attempt
        assert low <= delay <= low + BACKOFF_JITTER
    retries = [entry for entry in logs if entry["event"] == "lock.retry"]
    assert [(r["operation"], r["attempt"]) for r in retries] == [("unlock", 1), ("unlock", 2)]
    assert coordinator.state.state is not LockState.UNREACHABLE


async def test_attempts_are_bounded(fake_clock: FakeClock) -> None:
    lock = probe(fake_clock)
    coordinator = coordinate(fake_clock, lock)
    lock.fail_next(UNREACHABLE_ATTEMPTS)
    with pytest.raises(LockUnreachableError, match="injected"):
        await run_virtual(fake_clock, coordinator.lock("r"))
    assert lock.calls["lock"] == UNREACHABLE_ATTEMPTS
    assert coordinator.state.state is LockState.UNREACHABLE
    await run_virtual(fake_clock, coordinator.status())
    assert coordinator.state.state is LockState.LOCKED


async def test_jammed_is_not_retried_and_maps_to_jammed(fake_clock: FakeClock) -> None:
    lock = probe(fake_clock)
    coordinator = coordinate(fake_clock, lock)
    lock.jam()
    with pytest.raises(LockJammedError):
        await coordinator.unlock("r")
    assert lock.calls["unlock"] == 1
    assert coordinator.state.state is LockState.JAMMED
    assert coordinator.breaker is BreakerState.CLOSED


async def test_refused_is_not_retried(fake_clock: FakeClock) -> None:
    lock = probe(fake_clock)
    coordinator = coordinate(fake_clock, lock)
    await coordinator.status()
    lock.fail_next(1, LockRefusedError)
    with pytest.raises(LockRefusedError):
        await coordinator.unlock("r")
    assert lock.calls["unlock"] == 1
    assert coordinator.state.state is LockState.LOCKED


async def test_keypad_add_is_tried_once_and_remove_is_retried(fake_clock: FakeClock) -> None:
    lock = probe(fake_clock)
    coordinator = coordinate(fake_clock, lock)
    lock.fail_next(1)
    with pytest.raises(LockUnreachableError):
        await coordinator.add_keypad_code(keypad_code(fake_clock))
    assert lock.calls["add_keypad_code"] == 1
    assert await coordinator.add_keypad_code(keypad_code(fake_clock)) == 1
    lock.fail_next(1)
    await run_virtual(fake_clock, coordinator.remove_keypad_code(1))
    assert lock.calls["remove_keypad_code"] == 2
    assert lock.keypad_codes() == {}


async def test_breaker_opens_fails_fast_half_opens_and_closes(fake_clock: FakeClock) -> None:
    lock = probe(fake_clock)
    coordinator = coordinate(fake_clock, lock)
    lock.set_reachable(False)
    with pytest.raises(LockUnreachableError):
        await run_virtual(fake_clock, coordinator.status())
    assert coordinator.breaker is BreakerState.CLOSED
    with capture_logs() as logs, pytest.raises(LockCircuitOpenError):
        await run_virtual(fake_clock, coordinator.status())
    assert lock.calls["status"] == 5  # the 5th failure opened it; the 3rd try failed fast
    assert coordinator.breaker is BreakerState.OPEN
    assert [e["event"] for e in logs].count("lock.breaker_opened") == 1

    # While open: no call reaches the lock and no time passes.
    before = fake_clock.monotonic()
    with pytest.raises(LockCircuitOpenError):
        await coordinator.unlock("r")
    assert (lock.calls["unlock"], fake_clock.monotonic()) == (0, before)

    # After the cool-down one trial goes through; its failure reopens at once.
    fake_clock.advance(BREAKER_COOLDOWN)
    assert coordinator.breaker is BreakerState.HALF_OPEN
    with pytest.raises(LockCircuitOpenError):
        await run_virtual(fake_clock, coordinator.status())
    assert lock.calls["status"] == 6
    assert coordinator.breaker is BreakerState.OPEN

    # A successful trial closes it.
    fake_clock.advance(BREAKER_COOLDOWN)
    lock.set_reachable(True)
    with capture_logs() as logs:
        await coordinator.status()
    assert coordinator.breaker is BreakerState.CLOSED
    assert [e["event"] for e in logs] == ["lock.breaker_closed"]
    assert coordinator.state.state is LockState.LOCKED


async def test_a_jammed_answer_closes_a_half_open_breaker(fake_clock: FakeClock) -> None:
    lock = probe(fake_clock)
    coordinator = coordinate(fake_clock, lock)
    lock.set_reachable(False)
    for _ in range(2):
        with pytest.raises(LockUnreachableError):
            await run_virtual(fake_clock, coordinator.status())
    fake_clock.advance(BREAKER_COOLDOWN)
    lock.set_reachable(True)
    lock.jam()
    with pytest.raises(LockJammedError):
        await coordinator.unlock("r")
    assert coordinator.breaker is BreakerState.CLOSED
    assert coordinator.state.state is LockState.JAMMED


async def test_a_failing_on_event_does_not_stop_delivery(fake_clock: FakeClock) -> None:
    seen: list[EventKind] = []

    async def flaky(event: LockEvent) -> None:
        seen.append(event.kind)
        if event.kind is EventKind.UNLOCKED:
            raise RuntimeError("store is down")

    lock = probe(fake_clock)
    coordinator = coordinate(fake_clock, lock, flaky)
    await coordinator.start()
    with capture_logs() as logs:
        lock.turn_thumb()
        lock.set_battery(80)
        await coordinator.stop()
    assert seen == [EventKind.UNLOCKED, EventKind.BATTERY]
    [failure] = [e for e in logs if e["event"] == "lock.on_event_failed"]
    assert (failure["kind"], failure["vendor_event_id"]) == ("unlocked", "sim-1")
    assert coordinator.state.battery_percent == 80


class BrokenStream(ProbeLock):
    """A driver whose event stream fails, and whose stop fails."""

    def events(self) -> AsyncIterator[LockEvent]:
        return self._fail()

    async def _fail(self) -> AsyncIterator[LockEvent]:
        await asyncio.sleep(0)
        raise LockUnreachableError("bridge callback lost")
        yield  # pragma: no cover - makes this an async generator

    async def stop(self) -> None:
        raise LockRefusedError("cannot release")


async def test_a_failing_event_stream_marks_the_lock_unreachable(fake_clock: FakeClock) -> None:
    coordinator = coordinate(fake_clock, BrokenStream("x", now=fake_clock.now))
    with capture_logs() as logs:
        await coordinator.start()
        await settle()
        await coordinator.stop()
    assert coordinator.state.state is LockState.UNREACHABLE
    assert [e["event"] for e in logs] == ["lock.events_failed", "lock.stop_failed"]


class EndlessStream(ProbeLock):
    """A driver whose stop() does not end its events, and whose stop fails."""

    async def stop(self) -> None:
        raise LockRefusedError("cannot release")


async def test_stop_gives_up_on_a_stream_that_does_not_end(fake_clock: FakeClock) -> None:
    lock = EndlessStream("x", now=fake_clock.now)
    coordinator = coordinate(fake_clock, lock)
    await coordinator.start()
    with capture_logs() as logs:
        await run_virtual(fake_clock, coordinator.stop())
    assert [(e["event"], e["step"]) for e in logs] == [
        ("lock.stop_failed", "driver"),
        ("lock.stop_failed", "events"),
    ]
    assert fake_clock.monotonic() >= STOP_TIMEOUT
    await SimLock.stop(lock)


async def test_cancelling_a_caller_cancels_the_driver_call(fake_clock: FakeClock) -> None:
    lock = HangingLock("x", now=fake_clock.now)
    coordinator = coordinate(fake_clock, lock)
    call = asyncio.ensure_future(coordinator.unlock("r"))
    await settle()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert lock.cancelled == 1
    assert fake_clock.sleepers == 0
