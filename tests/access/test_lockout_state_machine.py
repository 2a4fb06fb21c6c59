"""Lockouts over a real store, driven by hypothesis against a model made of dicts and integers."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from cloud_sync.protocol.envelope import Signer
from gateway.access.lockout import LockoutPolicy, Lockouts
from gateway.store import Lockout, Store
from gateway.testing import FakeClock

HUB_ID = "hub-0001"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LOCKS = ["front-door", "back-door"]
SOURCES = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "keypad-1"]
EVERYONE = "*"
CLOCK = {"synced": True, "source": "ntp"}
DAY_MS = 24 * 3600 * 1000
TOP_LEVEL = 64
# Small thresholds and short lockouts so a few dozen steps reach high levels and the cap.
POLICIES = [
    LockoutPolicy(threshold=2, lock_threshold=3, base_seconds=1.0, cap_seconds=8.0),
    LockoutPolicy(threshold=3, lock_threshold=5, base_seconds=2.0, cap_seconds=2.0),
    LockoutPolicy(threshold=1, lock_threshold=4, base_seconds=5.0, cap_seconds=60.0),
    LockoutPolicy(),
]


class Counter:
    """The model of one counter: plain integers, times in milliseconds since the start."""

    def __init__(self) -> None:
        self.failures = 0
        self.level = 0
        self.until: int | None = None
        self.last_wrong: int | None = None


class LockoutMachine(RuleBasedStateMachine):
    """Wrong answers, right answers, time and restarts; the real class must match the model."""

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.directory = Path(tempfile.mkdtemp(prefix="lockout-"))
        self.clock = FakeClock(START)
        self.t = 0
        self.model: dict[tuple[str, str], Counter] = {}
        # Wrong answers evaluated since the source's last lockout, right answer or quiet day,
        # and when the last of them was.
        self.streak: dict[tuple[str, str], tuple[int, int]] = {}
        self.store: Store
        self.lockouts: Lockouts
        self.policy: LockoutPolicy

    @initialize(policy=st.sampled_from(POLICIES))
    def start(self, policy: LockoutPolicy) -> None:
        self.policy = policy
        self.open()

    def open(self) -> None:
        signer = Signer(HUB_ID, Ed25519PrivateKey.generate())
        opening = Store.open(
            self.directory / "hub.db", signer=signer, hub_id=HUB_ID, now=self.clock.now
        )
        self.store = self.runner.run(opening)
        self.lockouts = Lockouts(self.store, self.policy, self.clock.now)
        self.runner.run(self.lockouts.load())

    def teardown(self) -> None:
        store: Store | None = getattr(self, "store", None)
        if store is not None:
            self.runner.run(store.close())
        self.runner.close()
        shutil.rmtree(self.directory)

    # The model.

    def counter(self, lock: str, source: str) -> Counter:
        return self.model.setdefault((lock, source), Counter())

    def wait_ms(self, lock: str, source: str) -> int | None:
        ends = [self.counter(lock, s).until for s in (source, EVERYONE)]
        waits = [end - self.t for end in ends if end is not None and end > self.t]
        return max(waits) if waits else None

    def settle(self, c: Counter) -> None:
        if c.last_wrong is not None and self.t - c.last_wrong >= DAY_MS:
            c.failures, c.last_wrong = 0, None
        if c.until is not None and self.t - c.until >= DAY_MS:
            c.level, c.until = 0, None

    def count_wrong(self, c: Counter, threshold: int) -> int | None:
        """Count one wrong answer; return the failures that began a lockout, if one did."""
        self.settle(c)
        c.failures += 1
        c.last_wrong = self.t
        if c.failures < threshold:
            return None
        began_at = c.failures
        c.level = min(c.level + 1, TOP_LEVEL)
        c.until = self.t + min(
            int(self.policy.cap_seconds * 1000),
            int(self.policy.base_seconds * 1000) * 2 ** (c.level - 1),
        )
        c.failures = 0
        return began_at

    # The rules.

    @rule(lock=st.sampled_from(LOCKS), source=st.sampled_from(SOURCES))
    def wrong_answer(self, lock: str, source: str) -> None:
        if self.wait_ms(lock, source) is not None:
            return  # refused before any code check, as the engine does
        outcome = self.runner.run(self.lockouts.failure(lock, source, CLOCK))
        expected = []
        for key, threshold in (
            (source, self.policy.threshold),
            (EVERYONE, self.policy.lock_threshold),
        ):
            began_at = self.count_wrong(self.counter(lock, key), threshold)
            if began_at is not None:
                expected.append((key, self.counter(lock, key).level, began_at))
        got = [(r.body["source"], r.body["level"], r.body["failures"]) for r in outcome.records]
        assert got == expected
        self.runner.run(self.store.append_records(outcome.records))
        wait = self.wait_ms(lock, source)
        assert outcome.retry_after == (None if wait is None else wait / 1000)
        self.count_streak(lock, source, locked_out=any(key == source for key, _, _ in expected))

    def count_streak(self, lock: str, source: str, *, locked_out: bool) -> None:
        """Count one evaluated wrong answer of the source; it must stay within the threshold."""
        n, last = self.streak.get((lock, source), (0, self.t))
        n = 1 if self.t - last >= DAY_MS else n + 1
        assert n <= self.policy.threshold
        self.streak[lock, source] = (0, self.t) if locked_out else (n, self.t)

    @rule(lock=st.sampled_from(LOCKS), source=st.sampled_from(SOURCES))
    def right_answer(self, lock: str, source: str) -> None:
        if self.wait_ms(lock, source) is not None:
            return
        self.runner.run(self.lockouts.success(lock, source))
        c = self.counter(lock, source)
        self.settle(c)
        c.failures, c.last_wrong = 0, None
        self.streak.pop((lock, source), None)

    @rule(
        ms=st.one_of(
            st.integers(0, 10_000),
            st.sampled_from([DAY_MS - 1, DAY_MS, 3_600_000]),
        )
    )
    def advance(self, ms: int) -> None:
        self.clock.advance(ms / 1000)
        self.t += ms

    @rule(lock=st.sampled_from(LOCKS), source=st.sampled_from(SOURCES))
    def wait_out(self, lock: str, source: str) -> None:
        """Wait exactly until the source may try again, as a patient attacker would."""
        self.advance(self.wait_ms(lock, source) or 0)

    @rule()
    def restart(self) -> None:
        self.runner.run(self.store.close())
        self.open()
        for c in self.model.values():
            c.last_wrong = self.t if c.failures else None

    # The invariants.

    @invariant()
    def retry_after_agrees_with_the_model(self) -> None:
        for lock in LOCKS:
            for source in [*SOURCES, EVERYONE]:
                wait = self.wait_ms(lock, source)
                expected = None if wait is None else wait / 1000
                assert self.lockouts.retry_after(lock, source) == expected

    @invariant()
    def lockouts_never_exceed_the_cap(self) -> None:
        for lock in LOCKS:
            for source in SOURCES:
                wait = self.lockouts.retry_after(lock, source)
                assert wait is None or 0 < wait <= self.policy.cap_seconds

    @invariant()
    def a_source_never_gets_more_than_threshold_guesses_per_period(self) -> None:
        assert all(n <= self.policy.threshold for n, _ in self.streak.values())

    @invariant()
    def the_snapshot_is_the_model(self) -> None:
        for row in self.lockouts.snapshot():
            c = self.counter(row.lock_id, row.source)
            until = None if c.until is None else START.timestamp() * 1000 + c.until
            got_until = None if row.locked_until is None else row.locked_until.timestamp() * 1000
            assert (row.failures, row.level, got_until) == (c.failures, c.level, until)
        # A row only success() touched, with nothing to reset, is never written.
        persisted = {(r.lock_id, r.source): r for r in self.runner.run(self.store.list_lockouts())}
        for row in self.lockouts.snapshot():
            key = (row.lock_id, row.source)
            assert persisted.pop(key, Lockout(*key, 0, 0, None)) == row
        assert persisted == {}


LockoutMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestLockoutMachine = LockoutMachine.TestCase
