"""Trusted time for a hub without a real-time clock (DESIGN.md 4.3).

The *floor* is the latest time known to have passed: the floor persisted before the last
shutdown, every value ``now()`` returned, and the lower bound that verified cloud time gives
(``issued_at`` plus the monotonic time elapsed since receipt). ``now()`` is the later of the
wall clock and the floor, so it never goes backwards.

The status, checked in this order:

1. ``behind_floor`` (untrusted): the wall clock is more than
   ``BEHIND_FLOOR_TOLERANCE_SECONDS`` before the floor, *even if NTP says it is synchronized*.
   A step back of minutes is a reset to an old time, a forged NTP answer or a floor written by
   a clock that ran ahead; the hub cannot tell them apart, so it fails closed and reports.
   ``now()`` returns the floor meanwhile. It clears when the wall clock catches up with the
   floor, or when an operator deletes the persisted floor (kv key ``clock.floor``) and restarts
   the hub. Cloud time cannot clear it: a replayed old command plus a forged NTP step would
   otherwise reopen past windows.
2. ``ntp`` (trusted): the sync check says yes (by default systemd-timesyncd's flag file). Its
   result is cached for ``SYNC_CHECK_CACHE_SECONDS`` of monotonic time.
3. ``cloud`` (trusted): a verified cloud time (the latest, or the one giving the highest
   bound) was received at most ``CLOUD_ANCHOR_MAX_AGE_SECONDS`` ago and the wall clock is at
   most ``CLOUD_AHEAD_TOLERANCE_SECONDS`` past its projected lower bound. (Not behind it by more
   than ``BEHIND_FLOOR_TOLERANCE_SECONDS``: rule 1 covers that, as the floor holds the bound.)
4. ``unsynced`` (untrusted): otherwise.

Cloud time only ever raises the floor, so a cloud clock running ahead makes the hub report
``behind_floor`` rather than trust a wall clock that disagrees with signed time.
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


@dataclass(frozen=True, slots=True)
class ClockStatus:
    """Whether the clock is trusted, and why: ``ntp``, ``cloud``, ``unsynced``, ``behind_floor``."""

    synced: bool
    source: str

    def as_record(self) -> dict[str, object]:
        """The ``clock`` member every record body carries."""
        return {"synced": self.synced, "source": self.source}


def sync_flag_check(path: Path = SYNC_FLAG) -> Callable[[], bool]:
    """Return a sync check that is true while ``path`` exists; an unreadable path is false."""

    def check() -> bool:
        try:
            return path.exists()
        except OSError:
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


class TrustedClock:
    """Wall-clock time that never runs backwards, and whether it can be trusted."""

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
        self._highest: _Anchor | None = None  # the highest lower bound seen, for now()
        self._latest: _Anchor | None = None  # the latest received, for trust
        self._sync_cache: tuple[float, bool] | None = None
        self._polled: ClockStatus | None = None

    def _lower_bound(self, mono: float) -> datetime | None:
        if self._highest is None:
            return self._floor
        bound = self._highest.bound(mono)
        return bound if self._floor is None else max(bound, self._floor)

    def _read(self) -> tuple[datetime, float, datetime]:
        """Return the wall clock, monotonic time and now(), and raise the floor to now()."""
        wall, mono = _utc(self._wall(), "wall time"), self._monotonic()
        floor = self._lower_bound(mono)
        current = wall if floor is None else max(wall, floor)
        self._floor = current
        return wall, mono, current

    def restore_floor(self, floor: datetime) -> None:
        """Raise the floor to a persisted ``floor`` read after construction (never lowers it)."""
        floor = _utc(floor, "floor")
        self._floor = floor if self._floor is None else max(self._floor, floor)

    def now(self) -> datetime:
        """Aware UTC time: the later of the wall clock and the floor; never goes backwards."""
        return self._read()[2]

    def floor(self) -> datetime:
        """The value to persist now (equal to ``now()``)."""
        return self.now()

    def observe_cloud_time(self, issued_at: datetime) -> None:
        """Record the ``issued_at`` of a verified cloud message received just now."""
        mono = self._monotonic()
        anchor = _Anchor(_utc(issued_at, "issued_at") - timedelta(seconds=mono), mono)
        if self._highest is None or anchor.offset > self._highest.offset:
            self._highest = anchor
        self._latest = anchor

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
        wall, mono, current = self._read()
        if (current - wall).total_seconds() > BEHIND_FLOOR_TOLERANCE_SECONDS:
            return ClockStatus(synced=False, source="behind_floor")
        if self._synced(mono):
            return ClockStatus(synced=True, source="ntp")
        if self._cloud_agrees(wall, mono):
            return ClockStatus(synced=True, source="cloud")
        return ClockStatus(synced=False, source="unsynced")

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
    """Save ``clock.floor()`` now and every ``interval`` seconds until cancelled."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    while True:
        await save(clock.floor())
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
