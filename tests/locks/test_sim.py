"""SimLock: bolt, relock, door, keypad, faults and events, all on a fake clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from structlog.testing import capture_logs

from gateway.locks import (
    DoorState,
    DuplicateCodeError,
    EventKind,
    EventQueue,
    KeypadFullError,
    KeypadUnsupportedError,
    LockDriver,
    LockEvent,
    LockJammedError,
    LockRefusedError,
    LockState,
    LockStatus,
    LockUnreachableError,
    SimLock,
    Trigger,
)
from gateway.testing import FakeClock

from .conftest import keypad_code, settle, take


async def test_is_a_lock_driver(sim: SimLock) -> None:
    assert isinstance(sim, LockDriver)
    assert (sim.lock_id, sim.vendor, sim.has_keypad) == ("front-door", "sim", True)
    await sim.start()
    assert await sim.status() == LockStatus(LockState.LOCKED, 100, DoorState.CLOSED)
    await sim.stop()


@pytest.mark.parametrize(
    "options",
    [
        {"latency": -1.0},
        {"keypad_slots": 0},
        {"battery_percent": 101},
        {"battery_percent": -1},
        {"auto_relock_after": 0.0},
    ],
)
def test_rejects_impossible_options(fake_clock: FakeClock, options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"required|positive"):
        SimLock("x", now=fake_clock.now, **options)  # type: ignore[arg-type]


async def test_remote_unlock_then_auto_relock(sim: SimLock, fake_clock: FakeClock) -> None:
    events = sim.events()
    await sim.unlock("req-1")
    [unlocked] = await take(events, 1)
    await settle()  # the relock task starts its timer when it first runs
    assert unlocked == LockEvent(
        lock_id="front-door",
        kind=EventKind.UNLOCKED,
        at=fake_clock.now(),
        vendor="sim",
        vendor_event_id="sim-1",
        trigger=Trigger.REMOTE,
        request_id="req-1",
    )
    assert sim.snapshot().state is LockState.UNLOCKED
    fake_clock.advance(4.9)
    await settle()
    assert sim.snapshot().state is LockState.UNLOCKED
    fake_clock.advance(0.1)
    [locked] = await take(events, 1)
    assert (locked.kind, locked.trigger, locked.vendor_event_id) == (
        EventKind.LOCKED,
        Trigger.AUTO,
        "sim-2",
    )
    assert locked.at == unlocked.at + timedelta(seconds=5)
    assert sim.snapshot().state is LockState.LOCKED
    await sim.stop()


async def test_a_new_unlock_restarts_the_relock_timer(sim: SimLock, fake_clock: FakeClock) -> None:
    await sim.unlock("a")
    fake_clock.advance(4)
    await sim.unlock("b")
    fake_clock.advance(4)
    await settle()
    assert sim.snapshot().state is LockState.UNLOCKED
    assert fake_clock.sleepers == 1
    await sim.stop()
    assert fake_clock.sleepers == 0


async def test_latency_delays_every_call(fake_clock: FakeClock) -> None:
    lock = SimLock("slow", now=fake_clock.now, sleep=fake_clock.sleep, latency=2.0)
    call = asyncio.ensure_future(lock.unlock("r"))
    await settle()
    assert not call.done()
    assert lock.snapshot().state is LockState.LOCKED
    fake_clock.advance(2.0)
    await settle()
    assert call.done()
    assert lock.snapshot().state is LockState.UNLOCKED
    await lock.stop()


async def test_remote_lock_cancels_the_relock(sim: SimLock, fake_clock: FakeClock) -> None:
    events = sim.events()
    await sim.unlock("a")
    await sim.lock("b")
    await settle()
    assert fake_clock.sleepers == 0
    kinds = [(e.kind, e.trigger, e.request_id) for e in await take(events, 2)]
    assert kinds == [
        (EventKind.UNLOCKED, Trigger.REMOTE, "a"),
        (EventKind.LOCKED, Trigger.REMOTE, "b"),
    ]
    await sim.stop()


async def test_without_auto_relock_the_bolt_stays(fake_clock: FakeClock) -> None:
    lock = SimLock("x", now=fake_clock.now, sleep=fake_clock.sleep, auto_relock_after=None)
    await lock.unlock("r")
    assert fake_clock.sleepers == 0
    fake_clock.advance(3600)
    assert lock.snapshot().state is LockState.UNLOCKED
    await lock.stop()


async def test_relock_waits_for_the_door_to_close(sim: SimLock, fake_clock: FakeClock) -> None:
    events = sim.events()
    assert not sim.open_door()  # the bolt holds the door
    await sim.unlock("r")
    assert sim.open_door()
    assert sim.open_door()  # already open: no second event
    assert sim.snapshot().door is DoorState.OPEN
    await settle()
    fake_clock.advance(60)
    await settle()
    assert sim.snapshot().state is LockState.UNLOCKED
    sim.close_door()
    sim.close_door()  # already closed: no second event
    await settle()
    fake_clock.advance(5)
    await settle()
    kinds = [e.kind for e in await take(events, 4)]
    assert kinds == [
        EventKind.UNLOCKED,
        EventKind.DOOR_OPENED,
        EventKind.DOOR_CLOSED,
        EventKind.LOCKED,
    ]
    assert sim.snapshot() == LockStatus(LockState.LOCKED, 100, DoorState.CLOSED)
    await sim.stop()


async def test_door_closed_before_the_timer_needs_no_wait(
    sim: SimLock, fake_clock: FakeClock
) -> None:
    await sim.unlock("r")
    sim.open_door()
    sim.close_door()
    await settle()
    fake_clock.advance(5)
    await settle()
    assert sim.snapshot().state is LockState.LOCKED
    await sim.stop()


async def test_without_door_sensor_no_door_events_and_timer_relocks(
    fake_clock: FakeClock,
) -> None:
    lock = SimLock("x", now=fake_clock.now, sleep=fake_clock.sleep, door_sensor=False)
    events = lock.events()
    await lock.unlock("r")
    assert lock.open_door()
    await settle()
    fake_clock.advance(5)
    await settle()
    lock.close_door()
    await lock.stop()
    assert [e.kind async for e in events] == [EventKind.UNLOCKED, EventKind.LOCKED]
    assert lock.snapshot().door is DoorState.UNKNOWN


async def test_thumb_turn_is_a_manual_unlock(sim: SimLock) -> None:
    assert sim.turn_thumb()
    await sim.stop()
    [event] = [e async for e in sim.events()]
    assert (event.kind, event.trigger, event.request_id) == (
        EventKind.UNLOCKED,
        Trigger.MANUAL,
        None,
    )


async def test_fail_next_then_recover(sim: SimLock) -> None:
    sim.fail_next(2)
    sim.fail_next(1, LockRefusedError)
    for error in (LockUnreachableError, LockUnreachableError, LockRefusedError):
        with pytest.raises(error, match="injected"):
            await sim.unlock("r")
    await sim.unlock("r")
    assert sim.snapshot().state is LockState.UNLOCKED
    await sim.stop()


async def test_unreachable_fails_every_call_after_the_latency(fake_clock: FakeClock) -> None:
    lock = SimLock("x", now=fake_clock.now, sleep=fake_clock.sleep, latency=1.0)
    lock.set_reachable(False)
    call = asyncio.ensure_future(lock.status())
    await settle()
    assert not call.done()
    fake_clock.advance(1.0)
    await settle()
    with pytest.raises(LockUnreachableError):
        call.result()
    lock.set_reachable(True)
    assert (await asyncio.gather(lock.status(), _advance(fake_clock, 1.0)))[0].state == "locked"
    await lock.stop()


async def _advance(clock: FakeClock, seconds: float) -> None:
    await settle()
    clock.advance(seconds)


async def test_jam_fails_one_move(sim: SimLock) -> None:
    events = sim.events()
    sim.jam()
    with pytest.raises(LockJammedError):
        await sim.unlock("r")
    assert sim.snapshot().state is LockState.JAMMED
    [jammed] = await take(events, 1)
    assert (jammed.kind, jammed.request_id) == (EventKind.JAMMED, "r")
    await sim.unlock("again")
    assert sim.snapshot().state is LockState.UNLOCKED
    sim.jam()
    assert not sim.turn_thumb()
    await sim.stop()


async def test_jam_during_auto_relock(sim: SimLock, fake_clock: FakeClock) -> None:
    events = sim.events()
    await sim.unlock("r")
    sim.jam()
    await settle()
    fake_clock.advance(5)
    await settle()
    assert sim.snapshot().state is LockState.JAMMED
    _, jammed = await take(events, 2)
    assert (jammed.kind, jammed.trigger) == (EventKind.JAMMED, Trigger.AUTO)
    assert fake_clock.sleepers == 0
    await sim.stop()


async def test_battery_event_and_low_flag(sim: SimLock) -> None:
    sim.set_battery(12)
    status = await sim.status()
    assert status.battery_percent == 12
    assert status.battery_low
    with pytest.raises(ValueError, match="0-100"):
        sim.set_battery(101)
    await sim.stop()
    [event] = [e async for e in sim.events()]
    assert (event.kind, event.battery_percent) == (EventKind.BATTERY, 12)


async def test_keypad_slots_duplicates_and_full(fake_clock: FakeClock) -> None:
    lock = SimLock("x", now=fake_clock.now, sleep=fake_clock.sleep, keypad_slots=2)
    first = keypad_code(fake_clock, "111111")
    assert await lock.add_keypad_code(first) == 1
    with pytest.raises(DuplicateCodeError):
        await lock.add_keypad_code(keypad_code(fake_clock, "111111", hours=2))
    assert await lock.add_keypad_code(keypad_code(fake_clock, "222222")) == 2
    with pytest.raises(KeypadFullError):
        await lock.add_keypad_code(keypad_code(fake_clock, "333333"))
    await lock.remove_keypad_code(1)
    await lock.remove_keypad_code(1)  # absent is fine
    assert await lock.add_keypad_code(keypad_code(fake_clock, "333333")) == 1
    assert [c.code for c in lock.keypad_codes().values()] == ["222222", "333333"]
    await lock.stop()


@pytest.mark.parametrize(
    ("code", "hours", "why"),
    [
        ("12a456", 1, "digits only"),
        ("١٢٣٤٥٦", 1, "digits only"),
        ("123", 1, "4-12 digits"),
        ("1234567890123", 1, "4-12 digits"),
        ("123456", 0, "end after it starts"),
    ],
)
async def test_keypad_refuses_codes_it_cannot_hold(
    sim: SimLock, fake_clock: FakeClock, code: str, hours: float, why: str
) -> None:
    with pytest.raises(LockRefusedError, match=why):
        await sim.add_keypad_code(keypad_code(fake_clock, code, hours=hours))
    assert sim.keypad_codes() == {}
    await sim.stop()


async def test_press_respects_the_validity_window(sim: SimLock, fake_clock: FakeClock) -> None:
    events = sim.events()
    start = fake_clock.now() + timedelta(minutes=10)
    code = keypad_code(fake_clock, "482913")
    code = type(code)(code.code, code.name, start, start + timedelta(minutes=30))
    slot = await sim.add_keypad_code(code)
    assert not sim.press("482913")  # too early
    fake_clock.advance(600)
    assert sim.press("482913")
    await settle()
    fake_clock.advance(1800)
    await settle()
    assert not sim.press("482913")  # valid_until is exclusive
    assert not sim.press("000000")
    got = [(e.kind, e.trigger, e.keypad_code_id, e.details) for e in await take(events, 4)]
    assert got == [
        (EventKind.KEYPAD_DENIED, Trigger.UNKNOWN, slot, {"reason": "outside_validity"}),
        (EventKind.UNLOCKED, Trigger.KEYPAD, slot, {}),
        (EventKind.LOCKED, Trigger.AUTO, None, {}),
        (EventKind.KEYPAD_DENIED, Trigger.UNKNOWN, slot, {"reason": "outside_validity"}),
    ]
    [unknown] = await take(events, 1)
    assert (unknown.keypad_code_id, unknown.details) == (None, {"reason": "unknown_code"})
    await sim.stop()


async def test_press_on_a_jammed_bolt_returns_false(sim: SimLock, fake_clock: FakeClock) -> None:
    await sim.add_keypad_code(keypad_code(fake_clock))
    sim.jam()
    assert not sim.press("482913")
    assert sim.snapshot().state is LockState.JAMMED
    await sim.stop()


async def test_no_code_in_logs(sim: SimLock, fake_clock: FakeClock) -> None:
    await sim.add_keypad_code(keypad_code(fake_clock, "482913"))
    with capture_logs() as logs:
        sim.press("482914")
        sim.press("482913")
        await sim.remove_keypad_code(1)
        sim.press("482913")
    assert logs
    assert all("48291" not in repr(entry) for entry in logs)
    await sim.stop()


async def test_no_keypad(fake_clock: FakeClock) -> None:
    lock = SimLock("x", now=fake_clock.now, has_keypad=False)
    assert not lock.has_keypad
    with pytest.raises(KeypadUnsupportedError):
        await lock.add_keypad_code(keypad_code(fake_clock))
    with pytest.raises(KeypadUnsupportedError):
        await lock.remove_keypad_code(1)
    with pytest.raises(KeypadUnsupportedError):
        lock.press("482913")
    await lock.stop()


async def test_events_in_order_with_increasing_ids_and_stop_ends_them(
    sim: SimLock, fake_clock: FakeClock
) -> None:
    await sim.unlock("a")
    sim.open_door()
    sim.close_door()
    await sim.lock("b")
    sim.set_battery(50)
    await sim.stop()
    await sim.stop()  # idempotent
    sim.turn_thumb()  # after stop: nobody hears it
    events = [e async for e in sim.events()]
    assert [e.vendor_event_id for e in events] == [f"sim-{n}" for n in range(1, 6)]
    assert [e.kind for e in events] == [
        EventKind.UNLOCKED,
        EventKind.DOOR_OPENED,
        EventKind.DOOR_CLOSED,
        EventKind.LOCKED,
        EventKind.BATTERY,
    ]
    assert {e.at for e in events} == {fake_clock.now()}
    assert fake_clock.sleepers == 0
    with pytest.raises(LockUnreachableError):
        await sim.unlock("late")


async def test_stop_ends_a_waiting_reader(sim: SimLock) -> None:
    readers = [asyncio.ensure_future(_read_all(sim)) for _ in range(2)]
    await settle()
    await sim.stop()
    assert await asyncio.gather(*readers) == [[], []]


async def _read_all(lock: SimLock) -> list[LockEvent]:
    return [e async for e in lock.events()]


def test_event_queue_drops_events_after_close(fake_clock: FakeClock) -> None:
    queue = EventQueue()
    queue.close()
    queue.close()
    assert queue.closed
    event = LockEvent("x", EventKind.LOCKED, fake_clock.now(), "sim", "sim-1")
    queue.put(event)
    assert queue._queue.qsize() == 1  # only the end mark
    assert queue.pending == 0


async def test_event_queue_counts_what_is_not_read_yet(fake_clock: FakeClock) -> None:
    queue = EventQueue()
    event = LockEvent("x", EventKind.LOCKED, fake_clock.now(), "sim", "sim-1")
    queue.put(event)
    queue.put(event)
    assert queue.pending == 2
    assert await anext(queue) is event
    queue.close()
    assert queue.pending == 1
