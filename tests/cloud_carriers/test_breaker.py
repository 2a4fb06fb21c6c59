"""The breaker on its own: counting window, states, snapshot, metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud_sync.carriers.breaker import BreakerBoard, CircuitBreaker
from cloud_sync.carriers.errors import BreakerOpenError
from gateway.metrics import Registry

from .conftest import section

WALL = datetime(2026, 3, 1, tzinfo=UTC)


class Ticks:
    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value


def make(ticks: Ticks) -> CircuitBreaker:
    return CircuitBreaker("p", threshold=3, window_s=10.0, cooldown_s=5.0, clock=ticks,
                          wall=lambda: WALL)  # fmt: skip


def test_failures_outside_the_window_do_not_count() -> None:
    ticks = Ticks()
    breaker = make(ticks)
    breaker.failure()
    breaker.failure()
    ticks.value = 11.0  # both are now older than the window
    breaker.failure()
    assert breaker.state == "closed"
    assert breaker.snapshot().failures == 1
    breaker.failure()
    breaker.failure()
    assert breaker.state == "open"


def test_open_half_open_closed() -> None:
    ticks = Ticks()
    breaker = make(ticks)
    for _ in range(3):
        breaker.acquire()
        breaker.failure()
    snap = breaker.snapshot()
    assert (snap.state, snap.opened_at, snap.retry_at) == (
        "open",
        WALL,
        WALL + timedelta(seconds=5),
    )
    with pytest.raises(BreakerOpenError) as caught:
        breaker.acquire()
    assert caught.value.retry_at == WALL + timedelta(seconds=5)
    assert caught.value.kind == "breaker_open"
    ticks.value = 5.0
    assert breaker.state == "half_open"
    breaker.acquire()  # the probe
    with pytest.raises(BreakerOpenError):
        breaker.acquire()  # only one at a time
    breaker.success()
    assert breaker.snapshot() == breaker.snapshot()
    assert breaker.snapshot().state == "closed"
    assert breaker.snapshot().retry_at is None
    breaker.acquire()


def test_a_failed_probe_opens_again_for_a_full_cool_down() -> None:
    ticks = Ticks()
    breaker = make(ticks)
    for _ in range(3):
        breaker.failure()
    ticks.value = 6.0
    breaker.acquire()
    breaker.failure()
    assert breaker.state == "open"
    ticks.value = 10.0
    assert breaker.state == "open"
    ticks.value = 11.0
    assert breaker.state == "half_open"


def test_board_makes_one_breaker_per_partner_and_exports_states() -> None:
    ticks = Ticks()
    board = BreakerBoard.from_section(section(breaker_threshold=1))
    board.clock = ticks
    assert board.get("a") is board.get("a")
    board.get("b").failure()
    registry = Registry()
    board.register_metrics(registry)
    text = registry.render()
    assert 'lockhub_carrier_breaker_state{partner_id="a"} 0' in text
    assert 'lockhub_carrier_breaker_state{partner_id="b"} 2' in text
    ticks.value = 31.0
    assert 'partner_id="b"} 1' in registry.render()
