"""Rate shopping: every eligible partner quoted at once, each within its own time limit.

A partner whose breaker is open is skipped without a call; a failure or a timeout is
reported, not raised; so the shop answers in about one quote time limit however many
partners are slow. Offers are ranked (``ranking``) and stored with their expiry: the
quote's own, or ``offer_lifetime`` from now if sooner.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from cloud_sync.errors import NotFoundError
from cloud_sync.protocol.ids import new_ulid
from cloud_sync.store import carriers as q
from cloud_sync.store.carriers import OfferRow, PartnerRow

from .connector import Quote, QuoteRequest
from .errors import BreakerOpenError, CarrierError
from .ranking import Candidate, Ranked, Weights, rank
from .registry import CarrierRegistry
from .wire import request_json, valid_quote

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A partner that gave no offer, and why (``reason``: breaker_open, timeout, ...)."""

    partner_id: str
    provider_code: str
    name: str
    reason: str
    detail: str
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ShopResult:
    """The ranked, stored offers and the partners skipped."""

    task_id: str
    offers: list[OfferRow]
    skipped: list[Skipped]
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class _Outcome:
    partner: PartnerRow
    quotes: list[Quote]
    skipped: Skipped | None


class RateShop:
    """Quote every active partner of a tenant concurrently; rank and store the offers."""

    def __init__(
        self,
        registry: CarrierRegistry,
        *,
        offer_lifetime: timedelta,
        weights: Weights | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.registry = registry
        self.offer_lifetime = offer_lifetime
        self.weights = weights or Weights()
        self._now = now

    async def shop(self, request: QuoteRequest) -> ShopResult:
        """Quote, rank, store; failures and skips are in the result."""
        started = time.monotonic()
        partners = await self.registry.list(request.tenant, "active")
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._quote(partner, request)) for partner in partners]
        outcomes = [task.result() for task in tasks]
        skipped = [o.skipped for o in outcomes if o.skipped is not None]
        candidates = [
            Candidate(o.partner.partner_id, quote)
            for o in outcomes
            for quote in o.quotes
            if valid_quote(quote) and quote.expires_at > self._now()
        ]
        async with self.registry.store.read() as conn:
            stats = await q.get_stats(conn, [p.partner_id for p in partners])
        ranked = rank(
            candidates, stats, ready_at=request.ready_at, deliver_by=request.deliver_by,
            weights=self.weights,
        )  # fmt: skip
        offers = self._offers(request, ranked)
        await self.registry.store.write(lambda conn: q.insert_offers(conn, offers))
        elapsed = time.monotonic() - started
        log.info(
            "rate_shop.done", tenant=request.tenant, task_id=request.task_id,
            partners=len(partners), offers=len(offers), skipped=len(skipped), elapsed_s=elapsed,
        )  # fmt: skip
        return ShopResult(request.task_id, offers, skipped, elapsed)

    async def _quote(self, partner: PartnerRow, request: QuoteRequest) -> _Outcome:
        def skip(reason: str, detail: str, retry_at: datetime | None = None) -> _Outcome:
            found = Skipped(
                partner.partner_id, partner.provider_code, partner.name, reason, detail, retry_at
            )
            return _Outcome(partner, [], found)

        try:
            connector = self.registry.connector(partner)
            if connector.breaker.state == "open":
                retry_at = connector.breaker.snapshot().retry_at
                return skip("breaker_open", "the breaker is open", retry_at)
            return _Outcome(partner, await connector.quote(request), None)
        except BreakerOpenError as error:
            return skip("breaker_open", "the breaker is open", error.retry_at)
        except CarrierError as error:
            return skip(error.kind, str(error)[:200])

    def _offers(self, request: QuoteRequest, ranked: list[Ranked]) -> list[OfferRow]:
        now = self._now()
        latest = now + self.offer_lifetime
        stored = request_json(request)
        offers = []
        for item in ranked:
            quote = item.candidate.quote
            expires_at = min(quote.expires_at, latest)
            offers.append(
                OfferRow(
                    new_ulid(),
                    request.tenant,
                    request.task_id,
                    item.candidate.partner_id,
                    quote.provider_code,
                    quote.service,
                    quote.amount_minor,
                    quote.currency,
                    quote.eta,
                    expires_at,
                    quote.carrier_quote_id,
                    quote.raw,
                    item.score,
                    item.parts,
                    item.rank,
                    stored,
                    "open",
                    now,
                )
            )
        return offers

    async def get_offer(self, tenant: str, offer_id: str) -> OfferRow:
        """The tenant's offer; NotFoundError if none."""
        async with self.registry.store.read() as conn:
            found = await q.get_offer(conn, tenant, offer_id)
        if found is None:
            raise NotFoundError("offer", offer_id)
        return found
