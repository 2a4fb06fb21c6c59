"""The score: price, ETA and reliability parts, the prior, ties, deadlines (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud_sync.carriers.connector import Quote
from cloud_sync.carriers.ranking import (
    PRIOR_FAILURE,
    PRIOR_ON_TIME,
    Candidate,
    Weights,
    on_time,
    rank,
    reliability,
)
from cloud_sync.store.carriers import StatsRow

READY = datetime(2026, 3, 1, 12, tzinfo=UTC)


def offer(partner: str, amount: int, minutes: int, currency: str = "EUR") -> Candidate:
    eta = READY + timedelta(minutes=minutes)
    return Candidate(partner, Quote(partner, "s", amount, currency, eta, eta))


def test_a_carrier_without_history_scores_the_prior() -> None:
    assert reliability(None) == pytest.approx(PRIOR_ON_TIME * (1 - PRIOR_FAILURE))
    assert reliability(StatsRow("p")) == reliability(None)


def test_history_moves_reliability_away_from_the_prior() -> None:
    good = StatsRow("p", delivered=200, on_time=198, failed=0)
    bad = StatsRow("p", delivered=100, on_time=50, failed=50)
    assert reliability(good) > reliability(None) > reliability(bad)
    assert reliability(good) == pytest.approx((198 + 8.5) / 210 * (1 - 0.5 / 210))


def test_parts_and_order() -> None:
    cheap_slow = offer("a", 1000, 120)
    dear_fast = offer("b", 2000, 30)
    ranked = rank([cheap_slow, dear_fast], {}, ready_at=READY)
    parts = {r.candidate.partner_id: r.parts for r in ranked}
    assert parts["a"]["price"] == 1.0
    assert parts["b"]["price"] == 0.5
    assert parts["b"]["eta"] == 1.0
    assert parts["a"]["eta"] == 0.25
    # 0.5*1 + 0.3*0.25 beats 0.5*0.5 + 0.3*1 (reliability equal).
    assert [r.candidate.partner_id for r in ranked] == ["a", "b"]
    assert [r.rank for r in ranked] == [1, 2]
    heavy_eta = rank([cheap_slow, dear_fast], {}, ready_at=READY, weights=Weights(0.2, 0.6, 0.2))
    assert heavy_eta[0].candidate.partner_id == "b"


def test_reliability_breaks_an_even_price_and_eta() -> None:
    stats = {"b": StatsRow("b", delivered=50, on_time=50, failed=0)}
    ranked = rank([offer("a", 1000, 60), offer("b", 1000, 60)], stats, ready_at=READY)
    assert ranked[0].candidate.partner_id == "b"


def test_ties_go_to_price_then_eta_then_code() -> None:
    zero = Weights(0.0, 0.0, 1.0)
    ranked = rank(
        [offer("c", 900, 60), offer("b", 800, 90), offer("a", 800, 90), offer("d", 800, 60)],
        {}, ready_at=READY, weights=zero,
    )  # fmt: skip
    assert [r.candidate.partner_id for r in ranked] == ["d", "a", "b", "c"]


def test_late_offers_score_no_eta_and_currencies_rank_apart() -> None:
    late = offer("late", 500, 300)
    ranked = rank(
        [late, offer("ok", 1000, 60), offer("usd", 400, 60, "USD"), offer("free", 0, 60)],
        {}, ready_at=READY, deliver_by=READY + timedelta(hours=2),
    )  # fmt: skip
    parts = {r.candidate.partner_id: r.parts for r in ranked}
    assert parts["late"]["eta"] == 0.0
    assert parts["usd"]["price"] == 1.0  # the only USD offer is the cheapest in USD
    assert parts["free"]["price"] == 1.0
    assert rank([], {}, ready_at=READY) == []


def test_weights_must_sum_to_one() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        Weights(0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match="non-negative"):
        Weights(-0.5, 1.0, 0.5)


def test_on_time_uses_the_deadline_else_the_eta() -> None:
    eta = READY + timedelta(hours=1)
    assert on_time(eta, eta, None)
    assert not on_time(eta + timedelta(seconds=1), eta, None)
    assert on_time(eta + timedelta(minutes=30), eta, eta + timedelta(hours=1))
