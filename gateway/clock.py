"""Trusted time for a hub without a real-time clock (DESIGN.md 4.3).

Two lower bounds keep time from running backwards:

- the **floor**, the latest time known from trusted sources: the floor persisted before the
  last shutdown, every reading taken while the clock was trusted, and the lower bound that
  verified cloud time gives (``issued_at`` plus the monotonic time elapsed since receipt). It
  is what the hub persists (``floor()``). An untrusted reading never raises it: a wall clock
  that jumped ahead while unsynchronized would otherwise leave a floor that the corrected,
  synchronized clock sits behind, and the hub would refuse every window until the wall clock
  caught up with a time that never was (days, after a bad jump), even across restarts.
- the **guard**, in memory only: the latest ``now()`` returned since trust was last held, so
  that untrusted time never runs backwards within a run (under the ``allow`` policy, windows
  are decided on it). When trust returns, the guard drops to the trusted time: that is the one
  moment ``now()`` can go back, from an untrusted value to a trusted one, and every record
  says which clock status its time had.

``now()`` is the later of the wall clock and the floor, and, while untrusted, the guard. The
status, checked in this order:

1. ``behind_floor`` (untrusted): the wall clock is more than
   ``BEHIND_FLOOR_TOLERANCE_SECONDS`` before the floor, *even if NTP says it is synchronized*.
   A step back of minutes is a reset to an old time, a forged NTP answer or a floor written by
   a clock that ran ahead; the hub cannot tell them apart, so it fails closed and reports.
   ``now()`` returns the floor meanwhile. It clears when the wall clock catches up with the
   floor, or when an operator deletes the persisted floor (kv key ``clock.floor``) and restarts
   the hub. Cloud time cannot clear it: a replayed old command plus a forged NTP step would
   otherwise reopen past windows.
2. ``ntp`` (trusted): the sync check says yes (by default systemd-timesyncd's flag file, set by
   ``[access] clock_sync_flag``). Its result is cached for ``SYNC_CHECK_CACHE_SECONDS`` of
   monotonic time.
3. ``cloud`` (trusted): a verified cloud time (the latest, or the one giving the highest
   bound) was received at most ``CLOUD_ANCHOR_MAX_AGE_SECONDS`` ago and the wall clock is at
   most ``CLOUD_AHEAD_TOLERANCE_SECONDS`` past its projected lower bound. (Not behind it by more
   than ``BEHIND_FLOOR_TOLERANCE_SECONDS``: rule 1 covers that, as the floor holds the bound.)
4. ``behind_floor`` (untrusted) again when the wall clock is that far behind the guard: it
   stepped back while unsynchronized, and ``now()`` holds the guard.
5. ``unsynced`` (untrusted): otherwise.

Cloud time only ever raises the floor, so a cloud clock running ahead makes the hub report
``behind_floor`` rather than trust a wall clock that disagrees with signed time.

Listeners (``on_change``) hear when a reading changed the status or found time stepped forward
against monotonic time (an NTP step, a raised cloud bound): sleeps on monotonic time aimed at a
wall-clock deadline are then wrong, and the deadline loop recomputes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import structlog

from cloud_sync.protocol.fields import parse_rfc3339, rfc3339

log = structlog.get_logger(__name__)

SYNC_FLAG = Path("/run/systemd/timesync/synchronized")
FLOOR_KV_KEY = "clock.floor"
# NTP slews or steps a drifting clock by well under a minute, and the cloud's clock may run a
# little ahead of the hub's; two minutes back is no longer drift or skew.
BEHIND_FLOOR_TOLERANCE_SECONDS = 120.0
# The check is a stat() per access decision otherwise; sync state changes over minutes.
SYNC_CHECK_CACHE_SECONDS = 5.0
# A connected hub hears from the cloud far more often; older than this, the cloud time no
# longer vouches for a wall clock that may have drifted or been stepped since.
CLOUD_ANCHOR_MAX_AGE_SECONDS = 6 * 3600.0
# A command's issued_at may be a little old (broker queue, retries) when it arrives.
CLOUD_AHEAD_TOLERANCE_SECONDS = 300.0
# A power cut loses at most a minute of floor, for one small write a minute on the SD card.
FLOOR_SAVE_INTERVAL_SECONDS = 60.0
# A forward step of the time against monotonic time larger than this is told to listeners:
# the deadline loop's sleep runs on monotonic time, so a step makes it wake late by as much.
# NTP slews the wall and monotonic clocks alike; only a step (or a raised cloud bound) moves
# one against the other, and a second of lateness is below what a courier notices.
CLOCK_STEP_NOTICE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """Whether the clock is trusted, and why: ``ntp``, ``cloud``, ``unsynced``, ``behind_floor``."""

    synced: bool
    source: str

    def as_record(self) -> dict[str, object]:
        """The ``clock`` member every record body carries."""
        return {"synced": self.synced, "source": self.source}


def sync_flag_check(path: Path = SYNC_FLAG) -> Callable[[], bool]:
    """Return a sync check that is true while ``path`` exists; an unusable path is false."""

    def check() -> bool:
        try:
            return path.exists()
        except (OSError, ValueError):  # ValueError: a NUL in the path (config refuses one)
            return False

    return check


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{what} must be timezone-aware")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class _Anchor:
    """Verified cloud time: true time >= ``offset`` + monotonic seconds (since ``received``)."""

    offset: datetime
    received: float

    def bound(self, mono: float) -> datetime:
        return self.offset + timedelta(seconds=mono)


@dataclass(frozen=True, slots=True)
class Reading:
    """One reading of the clock: the time and how far it can be trusted, taken together."""

    now: datetime
    status: ClockStatus


class TrustedClock:
    """Wall-clock time that never runs backwards while untrusted, and whether it is trusted."""

    def __init__(
        self,
        *,
        wall: Callable[[], datetime],
        monotonic: Callable[[], float],
        sync_check: Callable[[], bool],
        floor: datetime | None = None,
    ) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self._sync_check = sync_check
        self._floor = None if floor is None else _utc(floor, "floor")
        self._guard: datetime | None = None  # the latest now() since trust was last held
        self._highest: _Anchor | None = None  # the highest lower bound seen, for now()
        self._latest: _Anchor | None = None  # the latest received, for trust
        self._sync_cache: tuple[float, bool] | None = None
        self._polled: ClockStatus | None = None
        # What the last reading saw, to tell listeners about changes.
        self._seen: ClockStatus | None = None
        self._offset: datetime | None = None  # now() minus monotonic time
        self._listeners: list[Callable[[], None]] = []

    def _lower_bound(self, mono: float) -> datetime | None:
        if self._highest is None:
            return self._floor
        bound = self._highest.bound(mono)
        return bound if self._floor is None else max(bound, self._floor)

    def read(self) -> Reading:
        """The time and its status, from one look at the wall clock (see the module docstring)."""
        wall, mono = _utc(self._wall(), "wall time"), self._monotonic()
        floor = self._lower_bound(mono)
        status = self._judge(wall, mono, floor)
        current = wall if floor is None else max(wall, floor)
        if status.synced:
            self._floor = current
        elif self._guard is not None:
            current = max(current, self._guard)
        self._guard = current
        self._notify(current, mono, status)
        return Reading(current, status)

    def _judge(self, wall: datetime, mono: float, floor: datetime | None) -> ClockStatus:
        if floor is not None and (floor - wall).total_seconds() > BEHIND_FLOOR_TOLERANCE_SECONDS:
            return ClockStatus(synced=False, source="behind_floor")
        if self._synced(mono):
            return ClockStatus(synced=True, source="ntp")
        if self._cloud_agrees(wall, mono):
            return ClockStatus(synced=True, source="cloud")
        guard = self._guard
        if guard is not None and (guard - wall).total_seconds() > BEHIND_FLOOR_TOLERANCE_SECONDS:
            return ClockStatus(synced=False, source="behind_floor")
        return ClockStatus(synced=False, source="unsynced")

    def _notify(self, current: datetime, mono: float, status: ClockStatus) -> None:
        offset = current - timedelta(seconds=mono)
        stepped = (
            self._offset is not None
            and (offset - self._offset).total_seconds() > CLOCK_STEP_NOTICE_SECONDS
        )
        changed = status != self._seen
        self._offset, self._seen = offset, status
        if stepped or changed:
            for listener in self._listeners:
                listener()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after any reading that changed the status or stepped time forward.

        It runs inside that reading, on the event loop: it must be quick and must not read the
        clock (setting an ``asyncio.Event`` is the intended use).
        """
        self._listeners.append(listener)

    def set_sync_check(self, sync_check: Callable[[], bool]) -> None:
        """Use ``sync_check`` from now on (a config reload naming another flag file)."""
        self._sync_check = sync_check
        self._sync_cache = None

    def restore_floor(self, floor: datetime) -> None:
        """Raise the floor to a persisted ``floor`` read after construction (never lowers it)."""
        floor = _utc(floor, "floor")
        self._floor = floor if self._floor is None else max(self._floor, floor)

    def now(self) -> datetime:
        """Aware UTC time: never below the floor, never backwards while untrusted."""
        return self.read().now

    def floor(self) -> datetime | None:
        """The value to persist now: the latest trusted time (None: nothing trusted yet)."""
        self.read()  # a trusted reading raises the floor to now
        return self._lower_bound(self._monotonic())

    def observe_cloud_time(self, issued_at: datetime) -> None:
        """Record the ``issued_at`` of a verified cloud message received just now."""
        mono = self._monotonic()
        anchor = _Anchor(_utc(issued_at, "issued_at") - timedelta(seconds=mono), mono)
        if self._highest is None or anchor.offset > self._highest.offset:
            self._highest = anchor
        self._latest = anchor
        self.read()  # a raised bound moves now(): listeners hear of it at once

    def _synced(self, mono: float) -> bool:
        cached = self._sync_cache
        if cached is not None and mono - cached[0] < SYNC_CHECK_CACHE_SECONDS:
            return cached[1]
        result = self._sync_check()
        self._sync_cache = (mono, result)
        return result

    def _cloud_agrees(self, wall: datetime, mono: float) -> bool:
        # The highest bound survives a backlog of old commands delivered after a reconnect;
        # the latest keeps trust once the highest is stale.
        return any(
            mono - anchor.received <= CLOUD_ANCHOR_MAX_AGE_SECONDS
            and (wall - anchor.bound(mono)).total_seconds() <= CLOUD_AHEAD_TOLERANCE_SECONDS
            for anchor in (self._highest, self._latest)
            if anchor is not None
        )

    def status(self) -> ClockStatus:
        """The clock's trust right now (see the module docstring for the rules)."""
        return self.read().status

    def trusted(self) -> bool:
        """Whether time-bound decisions may rely on ``now()``."""
        return self.status().synced

    def poll_change(self) -> ClockStatus | None:
        """The status if it differs from the last poll's (the first poll always returns it)."""
        current = self.status()
        if current == self._polled:
            return None
        self._polled = current
        log.info("clock.status_changed", synced=current.synced, source=current.source)
        return current


async def keep_floor(
    clock: TrustedClock,
    save: Callable[[datetime], Awaitable[None]],
    *,
    interval: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> NoReturn:
    """Save ``clock.floor()`` now and every ``interval`` seconds until cancelled.

    Nothing is written while there is no trusted floor, nor when it has not moved (an
    untrusted clock does not raise it): an SD card is spared writes that say nothing new.
    """
    if interval <= 0:
        raise ValueError("interval must be positive")
    saved: datetime | None = None
    while True:
        floor = clock.floor()
        if floor is not None and floor != saved:
            await save(floor)
            saved = floor
        await sleep(interval)


def format_floor(moment: datetime) -> str:
    """The kv value for a floor: RFC 3339 UTC, milliseconds (truncation only lowers it)."""
    return rfc3339(moment)


def parse_floor(text: str | None) -> datetime | None:
    """Parse a kv floor value; None stays None and garbage is logged and becomes None."""
    if text is None:
        return None
    try:
        return parse_rfc3339(text)
    except ValueError:
        log.warning("clock.floor_unreadable", length=len(text))
        return None
