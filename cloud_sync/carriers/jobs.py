"""Carrier jobs: booked from an accepted offer, followed, cancelled; cost captured at the end.

Accepting claims the offer and inserts the job (status ``booking``) in one transaction, then
books with the carrier outside it (no database lock is held across a network call). The same
Idempotency-Key (or, without one, the same offer) finds the same job: one job per key and per
offer, whatever the races. If booking fails the claim is undone and the error raised; trying
again sends the carrier the same idempotency key. When a job reaches a final status its cost
(the carrier's, else the quoted price) is stored on the job and a ``carrier_cost`` billing
event recorded in the same transaction, and the partner's reliability stats are updated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.billing.events import record_carrier_cost
from cloud_sync.errors import ConflictError, NotFoundError
from cloud_sync.protocol.ids import new_ulid
from cloud_sync.store import carriers as q
from cloud_sync.store.carriers import JobRow, OfferRow, StatsRow

from .connector import (
    FINAL_STATUSES,
    CarrierJob,
    CarrierJobRef,
    Cost,
    JobRequest,
    JobStatus,
    Label,
    Quote,
)
from .errors import CarrierError, OfferUnavailableError
from .ranking import on_time
from .registry import CarrierRegistry
from .resilience import ResilientConnector, carrier_idempotency_key
from .wire import request_from

log = structlog.get_logger(__name__)
BOOKING = "booking"
# A job still "booking" this long after its claim lost its booker (a crash, a restart): the
# next accept with its key books again, with the same carrier idempotency key.
STALE_BOOKING = timedelta(minutes=2)


def _job_row(offer: OfferRow, key: str, now: datetime) -> JobRow:
    request = request_from(offer.request)
    return JobRow(
        new_ulid(), offer.tenant_id, offer.task_id, offer.partner_id, offer.offer_id, key,
        offer.provider_code, offer.service, None, None, BOOKING, now, None, None, None,
        offer.request["pickup"], offer.request["dropoff"], offer.request["parcels"],
        offer.amount_minor, offer.currency, offer.eta, request.deliver_by,
        None, None, None, None, None, now, now,
    )  # fmt: skip


def _ref(job: JobRow) -> CarrierJobRef:
    return CarrierJobRef(job.provider_code, job.carrier_job_id or "", job.tracking_number or "")


class CarrierJobs:
    """Accept offers into jobs; refresh and cancel them."""

    def __init__(
        self, registry: CarrierRegistry, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.registry = registry
        self.store = registry.store
        self._now = now

    async def accept(
        self, tenant: str, offer_id: str, idempotency_key: str | None = None
    ) -> tuple[JobRow, bool]:
        """The job booked from the offer, and whether this call created it."""
        key = idempotency_key or f"offer:{offer_id}"
        now = self._now()
        job, created = await self.store.write(
            lambda conn: self._claim(conn, tenant, offer_id, key, now)
        )
        stale = job.status == BOOKING and now - job.updated_at > STALE_BOOKING
        if created or stale:
            job = await self._book(job)
        return job, created

    async def _claim(
        self, conn: AsyncConnection, tenant: str, offer_id: str, key: str, now: datetime
    ) -> tuple[JobRow, bool]:
        offer = await q.get_offer(conn, tenant, offer_id, lock=True)  # serializes accepts
        if offer is None:
            raise NotFoundError("offer", offer_id)
        existing = await q.job_by_key(conn, tenant, key)
        if existing is not None:
            if existing.offer_id != offer_id:
                raise ConflictError("this Idempotency-Key was used to accept another offer")
            return existing, False
        if offer.status != "open":
            raise OfferUnavailableError(offer_id, "accepted already")
        if offer.expires_at <= now:
            raise OfferUnavailableError(offer_id, "expired")
        partner = await q.get_partner(conn, tenant, offer.partner_id)
        if partner is None or partner.status != "active":
            raise OfferUnavailableError(offer_id, "from a partner no longer active")
        job = _job_row(offer, key, now)
        await q.insert_job(conn, job)
        await q.set_offer_status(conn, offer_id, "accepted")
        return job, True

    async def _book(self, job: JobRow) -> JobRow:
        offer, connector = await self._offer_and_connector(job)
        request = request_from(offer.request)
        quote = Quote(
            offer.provider_code, offer.service, offer.amount_minor, offer.currency, offer.eta,
            offer.expires_at, offer.carrier_quote_id, offer.raw,
        )  # fmt: skip
        booking = JobRequest(quote, job.task_id, request.pickup, request.dropoff, request.parcels)
        carrier_key = carrier_idempotency_key(job.tenant_id, job.idempotency_key)
        try:
            booked = await connector.create_job(booking, idempotency_key=carrier_key)
        except CarrierError:
            await self.store.write(lambda conn: self._release(conn, job))
            raise
        done = self._booked(job, booked)
        label = await self._carrier_label(connector, done)

        async def save(conn: AsyncConnection) -> None:
            await q.update_job(conn, done)
            if label is not None:
                await q.put_label(conn, done.job_id, label.format, label.data, self._now())

        await self.store.write(save)
        log.info("carrier_job.booked", job_id=job.job_id, provider=job.provider_code)
        return done

    def _booked(self, job: JobRow, booked: CarrierJob) -> JobRow:
        now = self._now()
        # Our own routes serve the label (the carrier's, kept at booking, or ours rendered)
        # and the manifest; a carrier's own label URL is only a fallback for clients.
        own = f"/v1/{job.tenant_id}/carrier-jobs/{job.job_id}"
        return dataclasses.replace(
            job, carrier_job_id=booked.carrier_job_id, tracking_number=booked.tracking_number,
            status=booked.status, status_at=now, tracking_url=booked.tracking_url,
            label_url=own + "/label", manifest_url=own + "/manifest", updated_at=now,
        )  # fmt: skip

    async def _carrier_label(self, connector: ResilientConnector, job: JobRow) -> Label | None:
        """The carrier's own label, fetched once at booking (some hand it out only then)."""
        try:
            return await connector.get_label(_ref(job))
        except CarrierError as exc:
            log.warning("carrier_job.label_unavailable", job_id=job.job_id, error=str(exc))
            return None

    async def _release(self, conn: AsyncConnection, job: JobRow) -> None:
        await q.delete_job(conn, job.job_id)
        await q.set_offer_status(conn, job.offer_id, "open")
        log.warning("carrier_job.booking_failed", job_id=job.job_id, offer_id=job.offer_id)

    async def _offer_and_connector(self, job: JobRow) -> tuple[OfferRow, ResilientConnector]:
        async with self.store.read() as conn:
            offer = await q.get_offer(conn, job.tenant_id, job.offer_id)
            partner = await q.get_partner(conn, job.tenant_id, job.partner_id)
        if offer is None or partner is None:
            raise ConflictError("the job's offer or carrier partner is gone")
        return offer, self.registry.connector(partner)

    async def get(self, tenant: str, job_id: str) -> JobRow:
        """The tenant's job; NotFoundError if none."""
        async with self.store.read() as conn:
            found = await q.get_job(conn, tenant, job_id)
        if found is None:
            raise NotFoundError("carrier job", job_id)
        return found

    async def refresh(self, tenant: str, job_id: str) -> JobRow:
        """Ask the carrier where the job stands; at a final status, capture the cost."""
        job = await self.get(tenant, job_id)
        if job.status in FINAL_STATUSES or job.status == BOOKING:
            return job
        _, connector = await self._offer_and_connector(job)
        status = await connector.get_status(_ref(job))
        return await self.store.write(lambda conn: self._apply(conn, tenant, job_id, status))

    async def apply_update(
        self, tenant: str, provider_code: str, carrier_job_id: str, status: JobStatus
    ) -> JobRow | None:
        """A carrier's own news (a webhook) about one of the tenant's jobs; None if unknown."""
        async with self.store.read() as conn:
            job = await q.job_by_carrier_id(conn, tenant, provider_code, carrier_job_id)
        if job is None:
            return None
        return await self.store.write(lambda conn: self._apply(conn, tenant, job.job_id, status))

    async def cancel(self, tenant: str, job_id: str) -> JobRow:
        """Cancel with the carrier, then here; a cancelled job stays cancelled."""
        job = await self.get(tenant, job_id)
        if job.status == "cancelled":
            return job
        if job.status in FINAL_STATUSES or job.status == BOOKING:
            raise ConflictError(f"a {job.status} job cannot be cancelled")
        _, connector = await self._offer_and_connector(job)
        await connector.cancel_job(_ref(job))
        status = JobStatus("cancelled", self._now())
        return await self.store.write(lambda conn: self._apply(conn, tenant, job_id, status))

    async def _apply(
        self, conn: AsyncConnection, tenant: str, job_id: str, status: JobStatus
    ) -> JobRow:
        job = await q.get_job(conn, tenant, job_id, lock=True)
        if job is None:  # pragma: no cover - jobs are never deleted once booked
            raise NotFoundError("carrier job", job_id)
        if job.status in FINAL_STATUSES:  # another worker got there first
            return job
        now = self._now()
        proof = None if status.proof is None else dataclasses.asdict(status.proof)
        changed = dataclasses.replace(
            job, status=status.status, status_at=status.at, proof=proof or job.proof,
            updated_at=now,
        )  # fmt: skip
        if status.status in FINAL_STATUSES:
            changed = await self._finish(conn, changed, status)
        await q.update_job(conn, changed)
        log.info("carrier_job.status", job_id=job_id, status=status.status)
        return changed

    async def _finish(self, conn: AsyncConnection, job: JobRow, status: JobStatus) -> JobRow:
        cost = status.cost
        if cost is None and status.status == "delivered":
            cost = Cost(job.quoted_amount_minor, job.currency, {"quoted": job.quoted_amount_minor})
        delivered = status.status == "delivered"
        change = StatsRow(
            job.partner_id,
            delivered=int(delivered),
            on_time=int(delivered and on_time(status.at, job.eta, job.deliver_by)),
            failed=int(status.status == "failed"),
        )
        await q.bump_stats(conn, self.store.dialect, change, self._now())
        if cost is None:
            return job
        await record_carrier_cost(
            conn, tenant=job.tenant_id, job_id=job.job_id, amount_minor=cost.amount_minor,
            currency=cost.currency, components=dict(cost.components), occurred_at=status.at,
            provider_code=job.provider_code, task_id=job.task_id, now=self._now(),
        )  # fmt: skip
        log.info("carrier_job.cost_captured", job_id=job.job_id, currency=cost.currency)
        return dataclasses.replace(
            job, cost_amount_minor=cost.amount_minor, cost_currency=cost.currency,
            cost_components=dict(cost.components), cost_captured_at=self._now(),
        )  # fmt: skip
