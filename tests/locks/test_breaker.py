"""CircuitBreaker: closed -> open at the threshold -> half-open after the cool-down -> closed."""

from __future__ import annotations

from gateway.locks import BreakerState, CircuitBreaker
from gateway.testing import FakeClock


def test_transitions(fake_clock: FakeClock) -> None:
    breaker = CircuitBreaker(threshold=2, cooldown=10, monotonic=fake_clock.monotonic)
    breaker.failed()
    assert breaker.allows()
    breaker.succeeded()  # a success resets the count
    breaker.failed()
    assert breaker.state is BreakerState.CLOSED
    breaker.failed()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allows()
    fake_clock.advance(9.9)
    assert not breaker.allows()
    fake_clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.failed()  # one failed trial reopens
    assert breaker.state is BreakerState.OPEN
    fake_clock.advance(10)
    assert breaker.allows()
    breaker.succeeded()
    assert breaker.state is BreakerState.CLOSED
