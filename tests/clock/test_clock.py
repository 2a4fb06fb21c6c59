"""Trusted time: every source and transition, the floor, cloud anchors, persistence."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.clock import (
    BEHIND_FLOOR_TOLERANCE_SECONDS,
    CLOCK_STEP_NOTICE_SECONDS,
    CLOUD_AHEAD_TOLERANCE_SECONDS,
    CLOUD_ANCHOR_MAX_AGE_SECONDS,
    FLOOR_KV_KEY,
    SYNC_CHECK_CACHE_SECONDS,
    SYNC_FLAG,
    ClockStatus,
    TrustedClock,
    format_floor,
    keep_floor,
    parse_floor,
    sync_flag_check,
)
from gateway.testing import DEFAULT_START, FakeClock

NTP = ClockStatus(synced=True, source="ntp")
CLOUD = ClockStatus(synced=True, source="cloud")
UNSYNCED = ClockStatus(synced=False, source="unsynced")
BEHIND = ClockStatus(synced=False, source="behind_floor")
SECOND = timedelta(seconds=1)


class Flag:
    """A sync check the test flips, counting how often it is asked."""

    def __init__(self, value: bool = False) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.value


def make(fake: FakeClock, flag: Flag | None = None, floor: datetime | None = None) -> TrustedClock:
    """A TrustedClock on the fake clock."""
    return TrustedClock(
        wall=fake.now, monotonic=fake.monotonic, sync_check=flag or Flag(), floor=floor
    )


# --- status record and the sync flag file


def test_status_record() -> None:
    assert NTP.as_record() == {"synced": True, "source": "ntp"}
    assert BEHIND.as_record() == {"synced": False, "source": "behind_floor"}


def test_sync_flag_default_path() -> None:
    assert Path("/run/systemd/timesync/synchronized") == SYNC_FLAG
    assert FLOOR_KV_KEY == "clock.floor"


def test_sync_flag_appearing_makes_ntp(fake_clock: FakeClock, tmp_path: Path) -> None:
    flag_file = tmp_path / "synchronized"
    clock = TrustedClock(
        wall=fake_clock.now, monotonic=fake_clock.monotonic, sync_check=sync_flag_check(flag_file)
    )
    assert clock.status() == UNSYNCED
    flag_file.touch()
    assert clock.status() == UNSYNCED  # still the cached answer
    fake_clock.advance(SYNC_CHECK_CACHE_SECONDS)
    assert clock.status() == NTP
    assert clock.trusted()
    flag_file.unlink()
    fake_clock.advance(SYNC_CHECK_CACHE_SECONDS)
    assert not clock.trusted()


def test_the_sync_check_can_be_replaced(fake_clock: FakeClock, tmp_path: Path) -> None:
    clock = make(fake_clock, Flag(value=False))
    assert clock.status() == UNSYNCED
    flag_file = tmp_path / "synced"
    flag_file.touch()
    clock.set_sync_check(sync_flag_check(flag_file))
    assert clock.status() == NTP  # at once: the old check's cached answer is dropped


def test_unreadable_flag_path_is_not_synced(tmp_path: Path) -> None:
    assert sync_flag_check(tmp_path / ("x" * 300))() is False  # ENAMETOOLONG, not ENOENT
    assert sync_flag_check(Path("/run/a\x00b"))() is False  # ValueError, not OSError


def test_sync_check_is_cached(fake_clock: FakeClock) -> None:
    flag = Flag(value=True)
    clock = make(fake_clock, flag)
    for _ in range(10):
        assert clock.status() == NTP
    assert flag.calls == 1
    fake_clock.advance(SYNC_CHECK_CACHE_SECONDS - 0.001)
    clock.status()
    assert flag.calls == 1
    fake_clock.advance(0.001)
    clock.status()
    assert flag.calls == 2


# --- now() and the floor


def test_now_follows_the_wall_clock(fake_clock: FakeClock) -> None:
    clock = make(fake_clock, Flag(value=True))
    assert clock.now() == DEFAULT_START
    fake_clock.advance(90)
    assert clock.now() == clock.floor() == DEFAULT_START + 90 * SECOND
    assert clock.now().tzinfo is UTC


def test_a_clock_never_trusted_has_no_floor_to_persist(fake_clock: FakeClock) -> None:
    clock = make(fake_clock)
    fake_clock.advance(90)
    assert clock.now() == DEFAULT_START + 90 * SECOND
    assert clock.floor() is None


def test_untrusted_readings_do_not_raise_the_floor(fake_clock: FakeClock) -> None:
    flag = Flag(value=True)
    clock = make(fake_clock, flag)
    fake_clock.advance(60)
    trusted = clock.now()
    assert clock.floor() == trusted
    flag.value = False
    fake_clock.advance(SYNC_CHECK_CACHE_SECONDS)
    assert clock.status() == UNSYNCED
    fake_clock.set_wall(trusted + timedelta(days=5))  # a bad RTC or a wrong manual date
    assert clock.now() == trusted + timedelta(days=5)  # untrusted time is still the wall's
    assert clock.floor() == trusted  # ... but it is not persisted


def test_ntp_after_an_untrusted_jump_ahead_is_trusted_at_once(fake_clock: FakeClock) -> None:
    flag = Flag(value=True)
    clock = make(fake_clock, flag)
    real = clock.now()
    flag.value = False
    fake_clock.advance(SYNC_CHECK_CACHE_SECONDS)
    fake_clock.set_wall(real + timedelta(days=5))
    assert clock.status() == UNSYNCED
    assert clock.now() == real + timedelta(days=5)
    # timesyncd steps the clock back to the true time and raises its flag.
    fake_clock.set_wall(real + timedelta(seconds=20))
    flag.value = True
    fake_clock.advance(SYNC_CHECK_CACHE_SECONDS)
    corrected = real + timedelta(seconds=20 + SYNC_CHECK_CACHE_SECONDS)
    assert clock.status() == NTP  # not behind_floor: the jump never became the floor
    assert clock.now() == corrected  # the one step back: from untrusted to trusted time
    persisted = clock.floor()
    assert persisted == corrected
    # A restart from that floor with the same wall clock is trusted too.
    assert make(fake_clock, Flag(value=True), floor=persisted).status() == NTP


def test_untrusted_time_never_runs_back_within_a_run(fake_clock: FakeClock) -> None:
    clock = make(fake_clock)
    fake_clock.advance(3600)
    high = clock.now()
    fake_clock.set_wall(high - timedelta(minutes=30))
    assert clock.now() == high  # the guard holds it
    assert clock.status() == BEHIND
    fake_clock.set_wall(high - 30 * SECOND)
    assert clock.status() == UNSYNCED  # within the tolerance: drift
    assert clock.now() == high
    assert clock.floor() is None  # and none of it is persisted


def test_boot_behind_the_floor(fake_clock: FakeClock) -> None:
    floor = DEFAULT_START + timedelta(days=3)
    clock = make(fake_clock, Flag(value=True), floor=floor)
    assert clock.status() == BEHIND
    assert not clock.trusted()
    assert clock.now() == clock.floor() == floor
    # NTP corrects the wall clock: trust returns once it has caught up with the floor.
    fake_clock.set_wall(floor + 10 * SECOND)
    assert clock.status() == NTP
    assert clock.now() == floor + 10 * SECOND


def test_floor_in_another_zone(fake_clock: FakeClock) -> None:
    floor = (DEFAULT_START + timedelta(hours=1)).astimezone(timezone(timedelta(hours=-5)))
    clock = make(fake_clock, floor=floor)
    assert clock.now() == floor
    assert clock.now().tzinfo is UTC


def test_floor_tolerance_boundary(fake_clock: FakeClock) -> None:
    tolerance = timedelta(seconds=BEHIND_FLOOR_TOLERANCE_SECONDS)
    clock = make(fake_clock, Flag(value=True), floor=DEFAULT_START + tolerance)
    assert clock.status() == NTP  # exactly at the tolerance: drift, still trusted
    assert clock.now() == DEFAULT_START + tolerance
    fake_clock.set_wall(DEFAULT_START - timedelta(microseconds=1))
    assert clock.status() == BEHIND


def test_wall_step_backwards_at_runtime(fake_clock: FakeClock) -> None:
    clock = make(fake_clock, Flag(value=True))
    fake_clock.advance(3600)
    high = clock.now()
    fake_clock.set_wall(high - timedelta(minutes=30))
    assert clock.now() == high  # never backwards
    assert clock.status() == BEHIND
    fake_clock.set_wall(high - 30 * SECOND)
    assert clock.status() == NTP  # a small NTP correction is tolerated
    assert clock.now() == high


def test_naive_inputs_are_refused(fake_clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="floor"):
        make(fake_clock, floor=datetime(2026, 1, 1))
    clock = TrustedClock(
        wall=lambda: datetime(2026, 1, 1),
        monotonic=fake_clock.monotonic,
        sync_check=Flag(),
    )
    with pytest.raises(ValueError, match="wall time"):
        clock.now()
    with pytest.raises(ValueError, match="issued_at"):
        make(fake_clock).observe_cloud_time(datetime(2026, 1, 1))


# --- cloud time


def test_fresh_cloud_anchor_makes_cloud(fake_clock: FakeClock) -> None:
    clock = make(fake_clock)
    clock.observe_cloud_time(DEFAULT_START - 10 * SECOND)
    assert clock.status() == CLOUD
    fake_clock.advance(CLOUD_ANCHOR_MAX_AGE_SECONDS)
    assert clock.status() == CLOUD  # exactly the maximum age
    fake_clock.advance(0.001)
    assert clock.status() == UNSYNCED  # stale
    clock.observe_cloud_time(fake_clock.now())
    assert clock.status() == CLOUD


def test_ntp_wins_over_cloud(fake_clock: FakeClock) -> None:
    clock = make(fake_clock, Flag(value=True))
    clock.observe_cloud_time(DEFAULT_START)
    assert clock.status() == NTP


def test_cloud_time_too_old_for_the_wall(fake_clock: FakeClock) -> None:
    ahead = timedelta(seconds=CLOUD_AHEAD_TOLERANCE_SECONDS)
    clock = make(fake_clock)
    clock.observe_cloud_time(DEFAULT_START - ahead - SECOND)
    assert clock.status() == UNSYNCED  # a late command: it no longer vouches for the wall
    assert clock.now() == DEFAULT_START
    clock.observe_cloud_time(DEFAULT_START - ahead)
    assert clock.status() == CLOUD  # the wall is exactly the tolerance past the bound


def test_cloud_time_ahead_of_the_wall(fake_clock: FakeClock) -> None:
    clock = make(fake_clock, Flag(value=True))
    cloud = DEFAULT_START + timedelta(seconds=BEHIND_FLOOR_TOLERANCE_SECONDS)
    clock.observe_cloud_time(cloud)
    assert clock.status() == NTP  # within the tolerance
    assert clock.now() == cloud  # but time never runs behind the signed bound
    clock.observe_cloud_time(cloud + SECOND)
    assert clock.status() == BEHIND  # the wall disagrees with signed time, NTP or not
    fake_clock.advance(10)
    assert clock.now() == cloud + 11 * SECOND  # the bound moves with monotonic time


def test_older_cloud_time_does_not_lower_the_bound(fake_clock: FakeClock) -> None:
    clock = make(fake_clock)
    clock.observe_cloud_time(DEFAULT_START + timedelta(minutes=1))
    clock.observe_cloud_time(DEFAULT_START - timedelta(hours=1))
    fake_clock.set_wall(DEFAULT_START - timedelta(days=1))
    fake_clock.advance(5)
    assert clock.now() == DEFAULT_START + timedelta(minutes=1, seconds=5)


def test_old_commands_after_a_reconnect_keep_cloud_trust(fake_clock: FakeClock) -> None:
    clock = make(fake_clock)
    clock.observe_cloud_time(DEFAULT_START)
    fake_clock.advance(3600)
    clock.observe_cloud_time(DEFAULT_START - timedelta(hours=2))  # queued while offline
    assert clock.status() == CLOUD  # the earlier, higher bound still vouches
    fake_clock.advance(CLOUD_ANCHOR_MAX_AGE_SECONDS - 3600 + 1)
    assert clock.status() == UNSYNCED  # stale, and the late one is too low


def test_latest_keeps_trust_when_the_highest_is_stale(fake_clock: FakeClock) -> None:
    clock = make(fake_clock)
    clock.observe_cloud_time(DEFAULT_START + 60 * SECOND)
    fake_clock.advance(CLOUD_ANCHOR_MAX_AGE_SECONDS + 1)
    clock.observe_cloud_time(fake_clock.now() - 10 * SECOND)  # a little more latency
    assert clock.status() == CLOUD


def test_restore_floor_only_raises(fake_clock: FakeClock) -> None:
    clock = make(fake_clock, Flag(value=True))
    clock.restore_floor(DEFAULT_START - timedelta(days=1))
    assert clock.now() == DEFAULT_START
    assert clock.status() == NTP
    clock.restore_floor(DEFAULT_START + timedelta(days=1))
    assert clock.now() == DEFAULT_START + timedelta(days=1)
    assert clock.status() == BEHIND
    fresh = make(fake_clock)
    fresh.restore_floor(DEFAULT_START + timedelta(hours=1))
    assert fresh.now() == DEFAULT_START + timedelta(hours=1)
    with pytest.raises(ValueError, match="floor"):
        fresh.restore_floor(datetime(2026, 1, 1))


def test_cloud_cannot_lift_behind_floor(fake_clock: FakeClock) -> None:
    floor = DEFAULT_START + timedelta(days=1)
    clock = make(fake_clock, floor=floor)
    clock.observe_cloud_time(DEFAULT_START)  # agrees with the wall, which is behind the floor
    assert clock.status() == BEHIND
    assert clock.now() == floor


# --- poll_change


def test_poll_change(fake_clock: FakeClock) -> None:
    flag = Flag()
    clock = make(fake_clock, flag)
    with structlog.testing.capture_logs() as logs:
        assert clock.poll_change() == UNSYNCED
        assert clock.poll_change() is None
        flag.value = True
        fake_clock.advance(SYNC_CHECK_CACHE_SECONDS)
        assert clock.poll_change() == NTP
        assert clock.poll_change() is None
        fake_clock.set_wall(DEFAULT_START - timedelta(hours=1))
        assert clock.poll_change() == BEHIND
    assert [(log["event"], log["source"]) for log in logs] == [
        ("clock.status_changed", "unsynced"),
        ("clock.status_changed", "ntp"),
        ("clock.status_changed", "behind_floor"),
    ]


# --- never backwards, whatever the wall does

STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.floats(min_value=0, max_value=1e6)),
        st.tuples(st.just("wall"), st.integers(min_value=-(10**9), max_value=10**9)),
        st.tuples(st.just("cloud"), st.integers(min_value=-(10**9), max_value=10**9)),
        st.tuples(st.just("flag"), st.booleans()),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(STEPS, st.none() | st.integers(min_value=-(10**8), max_value=10**8))
def test_time_runs_back_only_from_untrusted_to_trusted(
    steps: list[tuple[str, float]], floor_offset: int | None
) -> None:
    fake = FakeClock()
    flag = Flag()
    floor = None if floor_offset is None else DEFAULT_START + timedelta(seconds=floor_offset)
    clock = make(fake, flag, floor=floor)
    last = clock.read()
    last_trusted = floor  # the latest time known from a trusted source
    assert floor is None or last.now >= floor
    for kind, value in steps:
        if kind == "advance":
            fake.advance(value)
        elif kind == "wall":
            fake.set_wall(DEFAULT_START + timedelta(seconds=value))
        elif kind == "cloud":
            clock.observe_cloud_time(DEFAULT_START + timedelta(seconds=value))
        else:
            flag.value = bool(value)
        current = clock.read()
        assert current.now >= fake.now()
        assert current.status.synced == (current.status.source in {"ntp", "cloud"})
        if current.status.synced and not last.status.synced:
            # Trust returned: untrusted time is dropped, never below trusted time.
            assert last_trusted is None or current.now >= last_trusted
        else:
            assert current.now >= last.now
        persisted = clock.floor()
        assert persisted is None or persisted <= clock.now()
        assert last_trusted is None or (persisted is not None and persisted >= last_trusted)
        if current.status.synced:
            last_trusted = current.now
        last = current


# --- keeping and reading the floor


async def test_keep_floor_saves_every_interval(fake_clock: FakeClock) -> None:
    clock = make(fake_clock, Flag(value=True))
    saved: list[datetime] = []

    async def save(moment: datetime) -> None:
        saved.append(moment)

    task = asyncio.create_task(keep_floor(clock, save, interval=60, sleep=fake_clock.sleep))
    await asyncio.sleep(0)
    assert saved == [DEFAULT_START]
    for _ in range(3):
        fake_clock.advance(60)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert saved == [DEFAULT_START + timedelta(seconds=60 * i) for i in range(4)]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake_clock.sleepers == 0


async def test_keep_floor_saves_the_floor_not_the_wall(fake_clock: FakeClock) -> None:
    floor = DEFAULT_START + timedelta(days=1)
    clock = make(fake_clock, floor=floor)
    saved: list[datetime] = []

    async def save(moment: datetime) -> None:
        saved.append(moment)

    task = asyncio.create_task(keep_floor(clock, save, interval=1, sleep=fake_clock.sleep))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert saved == [floor]


async def test_keep_floor_saves_only_trusted_floors_that_moved(fake_clock: FakeClock) -> None:
    flag = Flag()
    clock = make(fake_clock, flag)
    saved: list[datetime] = []

    async def save(moment: datetime) -> None:
        saved.append(moment)

    async def tick() -> None:
        fake_clock.advance(60)
        for _ in range(3):
            await asyncio.sleep(0)

    task = asyncio.create_task(keep_floor(clock, save, interval=60, sleep=fake_clock.sleep))
    await asyncio.sleep(0)
    await tick()
    assert saved == []  # never trusted: nothing worth persisting
    flag.value = True
    await tick()
    assert saved == [DEFAULT_START + timedelta(seconds=120)]
    flag.value = False
    fake_clock.advance(SYNC_CHECK_CACHE_SECONDS)
    assert not clock.trusted()
    fake_clock.set_wall(fake_clock.now() + timedelta(days=5))
    await tick()
    await tick()
    assert saved == [DEFAULT_START + timedelta(seconds=120)]  # untrusted: the floor stayed
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- listeners


def test_listeners_hear_trust_changes_and_forward_steps(fake_clock: FakeClock) -> None:
    flag = Flag(value=True)
    clock = make(fake_clock, flag)
    heard: list[datetime] = []
    clock.on_change(lambda: heard.append(fake_clock.now()))
    clock.now()
    assert len(heard) == 1  # the first reading is a change from nothing
    fake_clock.advance(3600)
    clock.now()
    assert len(heard) == 1  # time passing is no change
    fake_clock.set_wall(fake_clock.now() - SECOND * 30)
    clock.now()
    assert len(heard) == 1  # a small step back: the loop just wakes early
    fake_clock.set_wall(fake_clock.now() + SECOND * (30 + CLOCK_STEP_NOTICE_SECONDS + 1))
    clock.now()
    assert len(heard) == 2  # a step forward makes monotonic sleeps late
    flag.value = False
    fake_clock.advance(SYNC_CHECK_CACHE_SECONDS)
    clock.now()
    assert len(heard) == 3  # trust lost
    clock.observe_cloud_time(fake_clock.now() + timedelta(minutes=1))
    assert len(heard) == 4  # signed time raised the bound: now() stepped (and trust returned)


async def test_keep_floor_needs_a_positive_interval(fake_clock: FakeClock) -> None:
    async def save(moment: datetime) -> None:
        raise AssertionError(moment)

    with pytest.raises(ValueError, match="positive"):
        await keep_floor(make(fake_clock), save, interval=0)


def test_floor_text_round_trip() -> None:
    moment = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    assert format_floor(moment) == "2026-03-01T12:00:00.123Z"
    assert parse_floor(format_floor(moment)) == moment.replace(microsecond=123000)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-03-01 12:00:00", "2026-02-30T00:00:00Z"])
def test_parse_floor_garbage(text: str) -> None:
    with structlog.testing.capture_logs() as logs:
        assert parse_floor(text) is None
    assert logs == [
        {"event": "clock.floor_unreadable", "length": len(text), "log_level": "warning"}
    ]


def test_parse_floor_absent() -> None:
    with structlog.testing.capture_logs() as logs:
        assert parse_floor(None) is None
    assert logs == []
