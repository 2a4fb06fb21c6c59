"""Fakes that ship with the package, for tests, the demo and benchmarks."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .store import NewRecord

# A fixed, recognisable default start so test output is stable and obviously fake.
DEFAULT_START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass(order=True, slots=True)
class _Sleeper:
    deadline: float
    order: int
    future: asyncio.Future[None] = field(compare=False)


class FakeClock:
    """A wall clock and monotonic clock that move only when told to."""

    def __init__(self, start: datetime = DEFAULT_START) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._wall = start.astimezone(UTC)
        self._mono = 0.0
        self._sleepers: list[_Sleeper] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        """Return the fake wall-clock time (aware, UTC)."""
        return self._wall

    def monotonic(self) -> float:
        """Return fake monotonic seconds; never goes backwards."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward and wake every sleeper whose deadline passed."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards; use set_wall() for wall jumps")
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)
        while self._sleepers and self._sleepers[0].deadline <= self._mono:
            sleeper = heapq.heappop(self._sleepers)
            if not sleeper.future.done():
                sleeper.future.set_result(None)

    def set_wall(self, moment: datetime) -> None:
        """Jump the wall clock (as an NTP step or a bad RTC would); monotonic time is unchanged."""
        if moment.tzinfo is None:
            raise ValueError("wall time must be timezone-aware")
        self._wall = moment.astimezone(UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has been advanced by ``seconds``."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, _Sleeper(self._mono + seconds, next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting on this clock."""
        return sum(1 for s in self._sleepers if not s.future.done())

    def sleeping_until(self, deadline: float) -> bool:
        """Whether a task waits for the monotonic clock to reach exactly ``deadline``."""
        return any(s.deadline == deadline and not s.future.done() for s in self._sleepers)


def lock_event_record(n: int, pad: str = "", lock_id: str = "front-door") -> NewRecord:
    """A valid ``lock.event`` record numbered ``n``; ``pad`` makes it bigger."""
    return NewRecord(
        "lock.event",
        {
            "lock_id": lock_id,
            "event": "unlock",
            "unattributed": False,
            "details": {"n": n, "pad": pad},
            "clock": {"synced": True, "source": "test"},
        },
    )
