"""Brute-force lockouts for courier codes and tokens, per (lock, source) and per lock.

A source is the client address of the local API or a keypad device id. Every wrong answer
counts against two counters: the source's on that lock, and the lock's own (source
``ALL_SOURCES``), which sums every source so that an attacker cannot dodge the limit by
switching addresses. A counter reaching its threshold starts a lockout of
``base * 2**(level - 1)`` seconds, capped, and restarts its count; each lockout raises its level.

Decisions:

- Attempts during a lockout are refused by the caller *before* any code check (``retry_after``
  is not None) and are not counted. Every attempt that reaches ``failure()`` is counted, even
  one racing a lockout that just began, so a racing caller errs towards strictness.
  ``failure()`` counts in memory before its first await: a caller that does not await between
  ``retry_after`` and ``failure()`` keeps the bound below under concurrent requests.
- A right answer resets that source's failure count, not its level. It leaves the lock counter
  alone, so a courier holding one valid code cannot launder guesses at the others by
  interleaving right answers.
- Forgetting: a counter's failures are forgotten after ``QUIET_PERIOD`` without a wrong answer
  on it; its level drops to zero once ``QUIET_PERIOD`` has passed since its last lockout ended.
- The lock counter trades availability for safety: anyone can lock every courier out of a door
  for a while, so its threshold is higher (20 against 5).
- Time comes from the injected ``now``: the hub's trusted clock, which never goes backwards.
- Both counters are persisted before ``failure()`` returns, so a crash right after a wrong
  answer cannot forget it. The time of the last failure is not persisted; ``load()`` takes it
  as the load time, so a restart only postpones forgetting.

Bound under the default policy: an attacker who guesses the moment the hub lets them can make
at most 150 guesses per lock in 24 h from one source and 600 from any number of sources (the
lock counter); after the first day, 120 and 480 per day. Levels never decay within those 24 h.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import structlog

from cloud_sync.protocol.messages import rfc3339
from cloud_sync.protocol.records import MAX_LOCKOUT_LEVEL
from gateway.store import Lockout, NewRecord, Store

log = structlog.get_logger(__name__)

ALL_SOURCES = "*"
# A day without wrong answers: long enough that a patient attacker gains nothing by waiting,
# short enough that a courier's typo last week never counts towards today's lockout.
QUIET_PERIOD = timedelta(hours=24)
# Lockout ends are stored with millisecond precision; rounding up keeps memory and disk equal.
_MS = timedelta(milliseconds=1)

# The record's ``clock`` member (``synced``, ``source``), as the engine's trusted clock reports it.
ClockMember = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """How many wrong answers start a lockout, and how long lockouts last."""

    threshold: int = 5
    lock_threshold: int = 20
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.lock_threshold < 1:
            raise ValueError("lockout thresholds must be at least 1")
        if not 0 < self.base_seconds <= self.cap_seconds:
            raise ValueError("need 0 < base_seconds <= cap_seconds")

    def duration(self, level: int) -> float:
        """Seconds a lockout at ``level`` (>= 1) lasts: base doubled per level, capped."""
        return min(self.cap_seconds, self.base_seconds * 2.0 ** (level - 1))


@dataclass(frozen=True, slots=True)
class LockoutState:
    """One counter: wrong answers since its last lockout or reset, and its lockout level."""

    failures: int = 0
    level: int = 0
    locked_until: datetime | None = None
    last_failure: datetime | None = None


@dataclass(frozen=True, slots=True)
class LockoutOutcome:
    """After a wrong answer: seconds until the source may retry, and records to append."""

    retry_after: float | None
    records: list[NewRecord]


def _ceil_ms(moment: datetime) -> datetime:
    spare = moment.microsecond % 1000
    return moment if spare == 0 else moment + (_MS - timedelta(microseconds=spare))


def _lockout_end(now: datetime, policy: LockoutPolicy, level: int) -> datetime:
    return _ceil_ms(now + timedelta(seconds=policy.duration(level)))


def forget(state: LockoutState, now: datetime) -> LockoutState:
    """Drop failures and level that ``QUIET_PERIOD`` has made stale at ``now``."""
    if state.last_failure is not None and now - state.last_failure >= QUIET_PERIOD:
        state = replace(state, failures=0, last_failure=None)
    if state.locked_until is not None and now - state.locked_until >= QUIET_PERIOD:
        state = replace(state, level=0, locked_until=None)
    return state


def next_state(
    state: LockoutState, *, wrong: bool, now: datetime, policy: LockoutPolicy, threshold: int
) -> tuple[LockoutState, bool]:
    """Apply one answer at ``now``; return the new state and whether a lockout began."""
    state = forget(state, now)
    if not wrong:
        return replace(state, failures=0, last_failure=None), False
    failures = state.failures + 1
    if failures < threshold:
        return replace(state, failures=failures, last_failure=now), False
    level = min(state.level + 1, MAX_LOCKOUT_LEVEL)
    return LockoutState(0, level, _lockout_end(now, policy, level), now), True


class Lockouts:
    """Every lockout counter of the hub, in memory and persisted in the store."""

    def __init__(self, store: Store, policy: LockoutPolicy, now: Callable[[], datetime]) -> None:
        self._store = store
        self._policy = policy
        self._now = now
        self._states: dict[tuple[str, str], LockoutState] = {}
        # Serialises writes so the last row written for a key is its latest state.
        self._write_lock = asyncio.Lock()

    async def load(self) -> None:
        """Read every persisted lockout into memory (call once at start, before answering)."""
        moment = self._now()
        for row in await self._store.list_lockouts():
            last = moment if row.failures else None
            self._states[row.lock_id, row.source] = LockoutState(
                row.failures, row.level, row.locked_until, last
            )

    def retry_after(self, lock_id: str, source: str) -> float | None:
        """Seconds until ``source`` may try ``lock_id`` again, or None when not locked out."""
        moment = self._now()
        waits = [
            (until - moment).total_seconds()
            for key in ((lock_id, source), (lock_id, ALL_SOURCES))
            if (until := self._state(*key).locked_until) is not None and until > moment
        ]
        return max(waits, default=None)

    async def failure(
        self,
        lock_id: str,
        source: str,
        clock: ClockMember,
        with_records: Sequence[NewRecord] = (),
    ) -> LockoutOutcome:
        """Count one wrong answer on both counters and persist them; raises StoreError if not.

        ``with_records`` (the caller's ``access.denied``) commit in the same transaction as the
        counters and any ``access.lockout`` records: one write to the disk per wrong answer.
        """
        _check_source(source)
        moment = self._now()
        records: list[NewRecord] = []
        counters = ((source, self._policy.threshold), (ALL_SOURCES, self._policy.lock_threshold))
        for key_source, threshold in counters:
            before = forget(self._state(lock_id, key_source), moment)
            after, began = next_state(
                before, wrong=True, now=moment, policy=self._policy, threshold=threshold
            )
            self._states[lock_id, key_source] = after
            if began:
                until = _lockout_end(moment, self._policy, after.level)
                record = _lockout_record(
                    lock_id,
                    key_source,
                    failures=before.failures + 1,
                    level=after.level,
                    until=until,
                    clock=clock,
                )
                records.append(record)
        await self._persist(lock_id, (source, ALL_SOURCES), [*with_records, *records])
        return LockoutOutcome(self.retry_after(lock_id, source), records)

    async def success(self, lock_id: str, source: str) -> None:
        """Reset the source's failure count after a right answer (its level decays with time)."""
        _check_source(source)
        before = self._state(lock_id, source)
        after, _ = next_state(
            before,
            wrong=False,
            now=self._now(),
            policy=self._policy,
            threshold=self._policy.threshold,
        )
        self._states[lock_id, source] = after
        if _row(after) != _row(before):
            await self._persist(lock_id, (source,), [])

    def snapshot(self) -> list[Lockout]:
        """Every counter as a store row, ordered by lock and source."""
        return [
            Lockout(lock_id, source, *_row(state))
            for (lock_id, source), state in sorted(self._states.items())
        ]

    def _state(self, lock_id: str, source: str) -> LockoutState:
        return self._states.get((lock_id, source), LockoutState())

    async def _persist(
        self, lock_id: str, sources: Sequence[str], records: Sequence[NewRecord]
    ) -> None:
        async with self._write_lock:
            rows = [Lockout(lock_id, s, *_row(self._state(lock_id, s))) for s in sources]
            await self._store.append_records(records, lockouts=rows)


def _lockout_record(
    lock_id: str, source: str, *, failures: int, level: int, until: datetime, clock: ClockMember
) -> NewRecord:
    """The ``access.lockout`` record of a lockout that began, and its log event."""
    log.warning("access.lockout", lock_id=lock_id, source=source, level=level)
    body = {
        "lock_id": lock_id,
        "source": source,
        "failures": failures,
        "locked_until": rfc3339(until),
        "level": level,
        "clock": dict(clock),
    }
    return NewRecord("access.lockout", body)


def _row(state: LockoutState) -> tuple[int, int, datetime | None]:
    return state.failures, state.level, state.locked_until


def _check_source(source: str) -> None:
    if source == ALL_SOURCES:
        raise ValueError(f"source {ALL_SOURCES!r} is reserved for the per-lock counter")
