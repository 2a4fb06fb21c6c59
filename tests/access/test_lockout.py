"""Lockouts: escalation, cap, reset, forgetting, restart, the per-lock counter, records."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.protocol.envelope import Signer
from cloud_sync.protocol.records import MAX_LOCKOUT_LEVEL
from gateway.access import lockout
from gateway.access.lockout import (
    ALL_SOURCES,
    QUIET_PERIOD,
    LockoutPolicy,
    Lockouts,
    LockoutState,
    forget,
    next_state,
)
from gateway.store import InvalidRecordError, Lockout, NewRecord, Store
from gateway.testing import FakeClock

HUB_ID = "hub-0001"
LOCK = "front-door"
CLOCK = {"synced": True, "source": "ntp"}
POLICY = LockoutPolicy()
DAY = 24 * 3600.0
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@asynccontextmanager
async def open_store(path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    """A real hub store at ``path`` with a fresh signing key."""
    signer = Signer(HUB_ID, Ed25519PrivateKey.generate())
    async with await Store.open(path, signer=signer, hub_id=HUB_ID, now=clock.now) as store:
        yield store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    async with open_store(tmp_path / "hub.db", clock) as opened:
        yield opened


@pytest.fixture
async def lockouts(store: Store, clock: FakeClock) -> Lockouts:
    return Lockouts(store, POLICY, clock.now)


async def wrong(lockouts: Lockouts, times: int, source: str = "10.0.0.7") -> list[NewRecord]:
    """``times`` wrong answers from ``source``; return every record they produced."""
    records: list[NewRecord] = []
    for _ in range(times):
        records += (await lockouts.failure(LOCK, source, CLOCK)).records
    return records


# The policy and the pure state function.


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0},
        {"lock_threshold": 0},
        {"base_seconds": 0.0},
        {"base_seconds": 10.0, "cap_seconds": 5.0},
    ],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"lockout|base_seconds"):
        LockoutPolicy(**kwargs)  # type: ignore[arg-type]


def test_durations_double_per_level_up_to_the_cap() -> None:
    durations = [POLICY.duration(level) for level in range(1, 11)]
    assert durations == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert POLICY.duration(MAX_LOCKOUT_LEVEL) == 3600


def test_next_state_locks_out_at_the_threshold_and_restarts_the_count() -> None:
    state = LockoutState()
    for _ in range(4):
        state, began = next_state(state, wrong=True, now=START, policy=POLICY, threshold=5)
        assert not began
    assert state == LockoutState(4, 0, None, START)
    state, began = next_state(state, wrong=True, now=START, policy=POLICY, threshold=5)
    assert began
    assert state == LockoutState(0, 1, START + timedelta(seconds=30), START)


def test_next_state_success_resets_failures_but_keeps_the_level() -> None:
    until = START + timedelta(seconds=30)
    state = LockoutState(3, 2, until, START)
    after, began = next_state(state, wrong=False, now=until, policy=POLICY, threshold=5)
    assert (after, began) == (LockoutState(0, 2, until, None), False)


def test_failures_are_forgotten_after_a_quiet_day() -> None:
    state = LockoutState(4, 0, None, START)
    assert forget(state, START + QUIET_PERIOD - timedelta(seconds=1)) == state
    assert forget(state, START + QUIET_PERIOD) == LockoutState()


def test_level_decays_a_quiet_day_after_the_last_lockout_ended() -> None:
    until = START + timedelta(seconds=3600)
    state = LockoutState(0, 6, until, None)
    assert forget(state, until + QUIET_PERIOD - timedelta(seconds=1)) == state
    assert forget(state, until + QUIET_PERIOD) == LockoutState()


def test_level_stops_at_the_wire_maximum() -> None:
    state = LockoutState(0, MAX_LOCKOUT_LEVEL, START, START)
    after, began = next_state(state, wrong=True, now=START, policy=POLICY, threshold=1)
    assert began
    assert after.level == MAX_LOCKOUT_LEVEL
    assert after.locked_until == START + timedelta(seconds=3600)


def test_lockout_end_rounds_up_to_the_millisecond() -> None:
    now = START + timedelta(microseconds=1)
    after, _ = next_state(LockoutState(), wrong=True, now=now, policy=POLICY, threshold=1)
    assert after.locked_until == START + timedelta(seconds=30, milliseconds=1)


# Lockouts over a real store.


async def test_escalation_doubles_each_lockout_up_to_the_cap(
    lockouts: Lockouts, clock: FakeClock
) -> None:
    seen = []
    for _ in range(10):
        assert lockouts.retry_after(LOCK, "10.0.0.7") is None
        await wrong(lockouts, 4)
        assert lockouts.retry_after(LOCK, "10.0.0.7") is None
        outcome = await lockouts.failure(LOCK, "10.0.0.7", CLOCK)
        assert outcome.retry_after == lockouts.retry_after(LOCK, "10.0.0.7")
        assert outcome.retry_after is not None
        seen.append(outcome.retry_after)
        clock.advance(outcome.retry_after)
    assert seen == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]


async def test_retry_after_counts_down(lockouts: Lockouts, clock: FakeClock) -> None:
    await wrong(lockouts, 5)
    clock.advance(12.5)
    assert lockouts.retry_after(LOCK, "10.0.0.7") == 17.5
    assert lockouts.retry_after(LOCK, "10.0.0.8") is None
    clock.advance(17.5)
    assert lockouts.retry_after(LOCK, "10.0.0.7") is None


async def test_success_resets_the_source_count(lockouts: Lockouts, store: Store) -> None:
    await wrong(lockouts, 4)
    await lockouts.success(LOCK, "10.0.0.7")
    assert await store.get_lockout(LOCK, "10.0.0.7") == Lockout(LOCK, "10.0.0.7", 0, 0, None)
    await wrong(lockouts, 4)
    assert lockouts.retry_after(LOCK, "10.0.0.7") is None


async def test_success_without_failures_writes_nothing(lockouts: Lockouts, store: Store) -> None:
    await lockouts.success(LOCK, "10.0.0.7")
    assert await store.list_lockouts() == []
    assert lockouts.snapshot() == [Lockout(LOCK, "10.0.0.7", 0, 0, None)]


async def test_success_leaves_the_lock_counter_alone(lockouts: Lockouts) -> None:
    # A courier with one valid code cannot launder guesses by answering right in between.
    for _ in range(5):
        await wrong(lockouts, 4)
        await lockouts.success(LOCK, "10.0.0.7")
    assert lockouts.retry_after(LOCK, "10.0.0.7") == 30
    assert lockouts.retry_after(LOCK, "10.0.0.99") == 30


async def test_a_wrong_answer_racing_a_lockout_still_counts(lockouts: Lockouts) -> None:
    await wrong(lockouts, 5)
    outcome = await lockouts.failure(LOCK, "10.0.0.7", CLOCK)
    assert outcome.retry_after == 30
    assert lockouts.snapshot()[1] == Lockout(LOCK, "10.0.0.7", 1, 1, START + timedelta(seconds=30))


async def test_the_lock_counter_sums_every_source(lockouts: Lockouts) -> None:
    records: list[NewRecord] = []
    for n in range(20):
        records += await wrong(lockouts, 1, source=f"10.0.1.{n}")
    assert [r.body["source"] for r in records] == [ALL_SOURCES]
    assert lockouts.retry_after(LOCK, "10.0.2.1") == 30
    assert lockouts.retry_after(LOCK, ALL_SOURCES) == 30
    assert lockouts.retry_after("back-door", "10.0.2.1") is None


async def test_retry_after_is_the_longer_of_both_lockouts(
    lockouts: Lockouts, clock: FakeClock
) -> None:
    for level in range(3):
        await wrong(lockouts, 5)
        clock.advance(30 * 2**level)
    await wrong(lockouts, 4)
    assert lockouts.retry_after(LOCK, "10.0.0.7") is None
    records = await wrong(lockouts, 1)
    assert [(r.body["source"], r.body["level"]) for r in records] == [
        ("10.0.0.7", 4),
        (ALL_SOURCES, 1),
    ]
    assert lockouts.retry_after(LOCK, "10.0.0.7") == 240
    assert lockouts.retry_after(LOCK, "10.0.0.8") == 30


async def test_records_follow_the_wire_contract(lockouts: Lockouts, store: Store) -> None:
    records = await wrong(lockouts, 20)
    assert [r.type for r in records] == ["access.lockout"] * 5
    assert records[0].body == {
        "lock_id": LOCK,
        "source": "10.0.0.7",
        "failures": 5,
        "locked_until": "2026-03-01T12:00:30.000Z",
        "level": 1,
        "clock": CLOCK,
    }
    # failure() committed them (validated against the contract) with the counters.
    stored = await store.unacked(100)
    assert [(s.seq, s.type) for s in stored] == [(n, "access.lockout") for n in range(1, 6)]


@pytest.mark.parametrize(
    ("source", "clock_member"),
    [("10.0.0.7", {"synced": "maybe", "source": "ntp"}), ("x" * 513, CLOCK)],
)
async def test_records_outside_the_contract_fail_at_append(
    store: Store, clock: FakeClock, source: str, clock_member: dict[str, object]
) -> None:
    lockouts = Lockouts(store, LockoutPolicy(threshold=1), clock.now)
    with pytest.raises(InvalidRecordError):
        await lockouts.failure(LOCK, source, clock_member)
    assert await store.list_lockouts() == []  # nothing half-written


async def test_a_lockout_is_logged_without_any_code(lockouts: Lockouts) -> None:
    with structlog.testing.capture_logs() as logs:
        await wrong(lockouts, 5)
    assert logs == [
        {
            "event": "access.lockout",
            "log_level": "warning",
            "lock_id": LOCK,
            "source": "10.0.0.7",
            "level": 1,
        }
    ]


async def test_the_reserved_source_is_refused(lockouts: Lockouts) -> None:
    with pytest.raises(ValueError, match="reserved"):
        await lockouts.failure(LOCK, ALL_SOURCES, CLOCK)
    with pytest.raises(ValueError, match="reserved"):
        await lockouts.success(LOCK, ALL_SOURCES)


async def test_both_counters_are_persisted_before_failure_returns(
    lockouts: Lockouts, store: Store
) -> None:
    await wrong(lockouts, 5)
    until = START + timedelta(seconds=30)
    assert await store.list_lockouts() == [
        Lockout(LOCK, ALL_SOURCES, 5, 0, None),
        Lockout(LOCK, "10.0.0.7", 0, 1, until),
    ]
    assert lockouts.snapshot() == await store.list_lockouts()


async def test_a_restart_keeps_lockouts_and_failures(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "hub.db"
    async with open_store(path, clock) as store:
        before = Lockouts(store, POLICY, clock.now)
        await wrong(before, 9)
        await wrong(before, 4, source="10.0.0.8")
    clock.advance(10)
    async with open_store(path, clock) as store:
        after = Lockouts(store, POLICY, clock.now)
        await after.load()
        assert after.snapshot() == before.snapshot()
        assert after.retry_after(LOCK, "10.0.0.7") == 20
        await wrong(after, 1, source="10.0.0.8")
        assert after.retry_after(LOCK, "10.0.0.8") == 30


async def test_after_a_restart_forgetting_starts_at_load(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "hub.db"
    async with open_store(path, clock) as store:
        await wrong(Lockouts(store, POLICY, clock.now), 4)
    clock.advance(DAY)
    async with open_store(path, clock) as store:
        after = Lockouts(store, POLICY, clock.now)
        await after.load()
        clock.advance(DAY - 1)
        await wrong(after, 1)
        assert after.retry_after(LOCK, "10.0.0.7") == 30


# The bound on brute force, by simulation.


async def most_guesses(lockouts: Lockouts, clock: FakeClock, *, many_sources: bool) -> int:
    """Wrong guesses an attacker gets at LOCK in 24 h, guessing the moment the hub allows."""
    end = clock.now() + timedelta(seconds=DAY)
    guesses, source = 0, 0
    while clock.now() < end:
        wait = lockouts.retry_after(LOCK, f"10.9.{source // 256}.{source % 256}")
        if wait is not None and many_sources and lockouts.retry_after(LOCK, ALL_SOURCES) is None:
            source += 1
        elif wait is not None:
            clock.advance(wait)
        else:
            await lockouts.failure(LOCK, f"10.9.{source // 256}.{source % 256}", CLOCK)
            guesses += 1
    return guesses


def docstring_figures() -> tuple[int, ...]:
    """The figures the module docstring states for the default policy."""
    text = " ".join((lockout.__doc__ or "").split())
    found = re.search(
        r"at most (\d+) guesses per lock in 24 h from one source and (\d+) from any number"
        r" .* after the first day, (\d+) and (\d+) per day",
        text,
    )
    assert found is not None
    return tuple(int(figure) for figure in found.groups())


async def test_the_daily_bound_in_the_docstring_holds(store: Store, clock: FakeClock) -> None:
    figures = []
    for many_sources in (False, True):
        lockouts = Lockouts(store, POLICY, clock.now)
        first_day = await most_guesses(lockouts, clock, many_sources=many_sources)
        second_day = await most_guesses(lockouts, clock, many_sources=many_sources)
        figures.append((first_day, second_day))
        clock.advance(2 * DAY)
    (one_first, one_later), (many_first, many_later) = figures
    assert (one_first, many_first, one_later, many_later) == (150, 600, 120, 480)
    assert docstring_figures() == (150, 600, 120, 480)


async def test_a_denial_commits_with_its_counters_in_one_transaction(
    lockouts: Lockouts, store: Store
) -> None:
    denial = NewRecord(
        "access.denied",
        {
            "lock_id": LOCK,
            "source": "10.0.0.7",
            "credential": "code",
            "reason": "no_match",
            "clock": CLOCK,
        },
    )
    await lockouts.failure(LOCK, "10.0.0.7", CLOCK, with_records=[denial])
    stored = await store.unacked(100)
    assert [s.type for s in stored] == ["access.denied"]
    assert {(lo.source, lo.failures) for lo in await store.list_lockouts()} == {
        ("10.0.0.7", 1),
        ("*", 1),
    }
