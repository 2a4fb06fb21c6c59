"""A circuit breaker per connector: closed, open, half-open; failures counted in a window.

Closed: calls pass; ``threshold`` failures within ``window_s`` open it. Open: calls fail fast
with BreakerOpenError for ``cooldown_s``. Half-open: one probe call passes; its success closes
the breaker, its failure opens it again for another cool-down. State is per process.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from gateway.metrics import Registry

from .errors import BreakerOpenError
from .settings import CarriersSection

BreakerStateName = Literal["closed", "open", "half_open"]
# Exported as a number so a dashboard can graph it.
STATE_VALUES: dict[BreakerStateName, int] = {"closed": 0, "half_open": 1, "open": 2}


def _wall() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """What the API and the metrics show about one breaker."""

    state: BreakerStateName
    failures: int
    threshold: int
    window_s: float
    cooldown_s: float
    opened_at: datetime | None
    retry_at: datetime | None


@dataclass
class CircuitBreaker:
    """One connector's breaker; ``clock`` is monotonic seconds, ``wall`` is for display."""

    name: str
    threshold: int
    window_s: float
    cooldown_s: float
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = _wall
    _failures: deque[float] = field(default_factory=deque, init=False)
    _opened: float | None = field(default=None, init=False)
    _opened_wall: datetime | None = field(default=None, init=False)
    _probing: bool = field(default=False, init=False)

    @property
    def state(self) -> BreakerStateName:
        """The state now (an open breaker turns half-open once its cool-down is over)."""
        if self._opened is None:
            return "closed"
        if self.clock() - self._opened >= self.cooldown_s:
            return "half_open"
        return "open"

    def acquire(self) -> None:
        """Let a call through, or raise BreakerOpenError; in half-open, one probe at a time."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._probing:
            self._probing = True
            return
        raise BreakerOpenError(self.name, self._retry_at())

    def success(self) -> None:
        """The call got an answer: close the breaker."""
        self._failures.clear()
        self._opened, self._opened_wall, self._probing = None, None, False

    def failure(self) -> None:
        """The call failed: count it; open on ``threshold`` in the window, or a failed probe."""
        if self._opened is not None:  # a failed probe (or a late failure while open)
            self._open()
            return
        now = self.clock()
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window_s:
            self._failures.popleft()
        if len(self._failures) >= self.threshold:
            self._open()

    def release(self) -> None:
        """The call ended without a verdict (cancelled): let another probe through."""
        self._probing = False

    def _open(self) -> None:
        self._opened, self._opened_wall, self._probing = self.clock(), self.wall(), False
        self._failures.clear()

    def _retry_at(self) -> datetime | None:
        if self._opened is None or self._opened_wall is None:
            return None
        return self._opened_wall + timedelta(seconds=self.cooldown_s)

    def snapshot(self) -> BreakerSnapshot:
        """The state, failures in the window, thresholds and when it opened."""
        now = self.clock()
        recent = sum(1 for moment in self._failures if now - moment <= self.window_s)
        return BreakerSnapshot(
            self.state, recent, self.threshold, self.window_s, self.cooldown_s,
            self._opened_wall, self._retry_at(),
        )  # fmt: skip


@dataclass
class BreakerBoard:
    """Every connector's breaker, by key (the partner id), made on first use."""

    threshold: int
    window_s: float
    cooldown_s: float
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], datetime] = _wall
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)

    @classmethod
    def from_section(
        cls, section: CarriersSection, wall: Callable[[], datetime] = _wall
    ) -> BreakerBoard:
        """A board with the ``[carriers]`` thresholds."""
        return cls(
            section.breaker_threshold, section.breaker_window_s, section.breaker_cooldown_s,
            wall=wall,
        )  # fmt: skip

    def get(self, key: str) -> CircuitBreaker:
        """The breaker of ``key``."""
        found = self.breakers.get(key)
        if found is None:
            found = CircuitBreaker(
                key, self.threshold, self.window_s, self.cooldown_s, self.clock, self.wall
            )
            self.breakers[key] = found
        return found

    def samples(self) -> Iterable[tuple[dict[str, str], float]]:
        """(labels, state value) per breaker, for the metrics gauge."""
        for key, breaker in sorted(self.breakers.items()):
            yield {"partner_id": key}, float(STATE_VALUES[breaker.state])

    def register_metrics(self, registry: Registry) -> None:
        """Export ``lockhub_carrier_breaker_state`` (0 closed, 1 half-open, 2 open)."""
        registry.gauge(
            "lockhub_carrier_breaker_state",
            "Carrier breaker state per partner: 0 closed, 1 half-open, 2 open.",
            self.samples,
        )
