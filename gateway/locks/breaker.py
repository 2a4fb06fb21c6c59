"""A small circuit breaker on an injected monotonic clock; each lock coordinator keeps one."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    """Circuit breaker states."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``threshold`` failures in a row; after ``cooldown`` s lets a trial through."""

    def __init__(self, *, threshold: int, cooldown: float, monotonic: Callable[[], float]) -> None:
        self._threshold = threshold
        self._cooldown = cooldown
        self._monotonic = monotonic
        self._failures = 0
        self._opened_at = 0.0
        self._state = BreakerState.CLOSED

    @property
    def state(self) -> BreakerState:
        """The current state; OPEN turns HALF_OPEN once the cool-down has passed."""
        elapsed = self._monotonic() - self._opened_at
        if self._state is BreakerState.OPEN and elapsed >= self._cooldown:
            self._state = BreakerState.HALF_OPEN
        return self._state

    def allows(self) -> bool:
        """Whether a call may go to the lock now."""
        return self.state is not BreakerState.OPEN

    def succeeded(self) -> None:
        """The lock answered: close."""
        self._failures = 0
        self._state = BreakerState.CLOSED

    def failed(self) -> None:
        """The lock did not answer: open at the threshold, or at once when half-open."""
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or self._failures >= self._threshold:
            self._state = BreakerState.OPEN
            self._opened_at = self._monotonic()
