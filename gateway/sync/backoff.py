"""Exponential backoff with full jitter (the AWS "Exponential Backoff And Jitter" scheme)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

# 2**30 seconds overflows nothing and is far past any cap; it keeps 2**attempt finite.
_MAX_EXPONENT = 30


@dataclass(slots=True)
class Backoff:
    """Delays ``uniform(0, min(cap, base * 2**attempt))``; ``reset`` after a stable connection."""

    base: float
    cap: float
    uniform: Callable[[float, float], float] = field(default=random.uniform)
    attempt: int = 0

    def ceiling(self, attempt: int) -> float:
        """The largest delay the ``attempt``-th retry (from 0) may wait."""
        return min(self.cap, self.base * 2.0 ** min(attempt, _MAX_EXPONENT))

    def next_delay(self) -> float:
        """The delay before the next retry; each call counts one more failure."""
        delay = self.uniform(0.0, self.ceiling(self.attempt))
        self.attempt += 1
        return min(max(delay, 0.0), self.cap)

    def reset(self) -> None:
        """Start again from the base delay."""
        self.attempt = 0
