"""The rate-shop score: price, ETA and reliability, each in [0, 1], weighted (pure).

- price: cheapest / this offer's price, among offers in the same currency (the cheapest
  scores 1; twice the price scores 0.5). Currencies are never converted here.
- eta: fastest lead time / this offer's lead time, where lead time is ETA minus ready_at, at
  least one minute (the fastest scores 1). An ETA after ``deliver_by`` scores 0.
- reliability: on-time rate x (1 - failure rate), both smoothed toward a prior with the
  weight of PRIOR_JOBS past jobs (additive smoothing), so a carrier without history starts at
  the prior and its own record takes over as jobs finish: on-time = (on_time + p*w) /
  (delivered + w); failure = (failed + q*w) / (delivered + failed + w).
- score = w_price * price + w_eta * eta + w_reliability * reliability; weights sum to 1.
Ties go to the lower price, then the earlier ETA, then the provider code, for a stable order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloud_sync.store.carriers import StatsRow

from .connector import Quote

# A new carrier is assumed on time 85% of the time and failing 5%: typical same-day figures,
# a little below the established carriers so proven ones win a tie.
PRIOR_ON_TIME = 0.85
PRIOR_FAILURE = 0.05
# Ten pseudo-jobs: a carrier's own record outweighs the prior after a couple of weeks of work.
PRIOR_JOBS = 10.0
# Below a minute, lead-time differences are clock noise.
MIN_LEAD = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Weights:
    """How much price, ETA and reliability count; they must sum to 1."""

    price: float = 0.5
    eta: float = 0.3
    reliability: float = 0.2

    def __post_init__(self) -> None:
        parts = (self.price, self.eta, self.reliability)
        if any(part < 0 for part in parts) or abs(sum(parts) - 1.0) > 1e-9:
            raise ValueError("weights must be non-negative and sum to 1")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A quote and the partner that gave it."""

    partner_id: str
    quote: Quote


@dataclass(frozen=True, slots=True)
class Ranked:
    """A candidate with its score and the parts it is made of."""

    candidate: Candidate
    score: float
    parts: dict[str, float]
    rank: int


def reliability(stats: StatsRow | None) -> float:
    """On-time rate x (1 - failure rate), smoothed toward the prior."""
    delivered = stats.delivered if stats else 0
    on_time = stats.on_time if stats else 0
    failed = stats.failed if stats else 0
    on_time_rate = (on_time + PRIOR_ON_TIME * PRIOR_JOBS) / (delivered + PRIOR_JOBS)
    failure_rate = (failed + PRIOR_FAILURE * PRIOR_JOBS) / (delivered + failed + PRIOR_JOBS)
    return on_time_rate * (1.0 - failure_rate)


def _lead(quote: Quote, ready_at: datetime) -> timedelta:
    return max(quote.eta - ready_at, MIN_LEAD)


def _price_part(quote: Quote, cheapest: Mapping[str, int]) -> float:
    floor = cheapest[quote.currency]
    if quote.amount_minor <= 0:
        return 1.0
    return max(floor, 0) / quote.amount_minor


def rank(
    candidates: Sequence[Candidate],
    stats: Mapping[str, StatsRow],
    *,
    ready_at: datetime,
    deliver_by: datetime | None = None,
    weights: Weights | None = None,
) -> list[Ranked]:
    """Score and order the candidates, best first."""
    if not candidates:
        return []
    weights = weights or Weights()
    cheapest: dict[str, int] = {}
    for item in candidates:
        currency, amount = item.quote.currency, item.quote.amount_minor
        cheapest[currency] = min(cheapest.get(currency, amount), amount)
    fastest = min(_lead(item.quote, ready_at) for item in candidates)
    scored = []
    for item in candidates:
        late = deliver_by is not None and item.quote.eta > deliver_by
        parts = {
            "price": _price_part(item.quote, cheapest),
            "eta": 0.0 if late else fastest / _lead(item.quote, ready_at),
            "reliability": reliability(stats.get(item.partner_id)),
        }
        score = (
            weights.price * parts["price"]
            + weights.eta * parts["eta"]
            + weights.reliability * parts["reliability"]
        )
        scored.append((item, round(score, 6), {k: round(v, 6) for k, v in parts.items()}))
    scored.sort(
        key=lambda s: (-s[1], s[0].quote.amount_minor, s[0].quote.eta, s[0].quote.provider_code)
    )
    return [Ranked(item, score, parts, n) for n, (item, score, parts) in enumerate(scored, 1)]


def on_time(delivered_at: datetime, eta: datetime, deliver_by: datetime | None) -> bool:
    """Whether a delivery counts as on time: by ``deliver_by`` if set, else by the ETA."""
    return delivered_at <= (deliver_by if deliver_by is not None else eta)
