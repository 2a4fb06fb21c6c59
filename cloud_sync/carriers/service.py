"""The carrier desk: registry, rate shop and jobs built from ``[carriers]`` over the store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp

from cloud_sync.store import CloudStore
from cloud_sync.store import carriers as q
from cloud_sync.store.carriers import CarrierStore
from cloud_sync.store.rows import TaskRow

from .breaker import BreakerBoard
from .connector import CarrierJobRef, JobStatus
from .credentials import KeyRing
from .jobs import CarrierJobs
from .ranking import Weights
from .registry import CarrierRegistry, ProviderContext
from .resilience import Policy
from .settings import CarriersSection
from .shopping import RateShop


def carrier_store(store: CloudStore) -> CarrierStore:
    """The carrier tables over the cloud store's own database (one pool, one SQLite writer)."""
    # Sharing the store's database keeps SQLite to one writer queue.
    return CarrierStore(store.database)


TaskLookup = Callable[[str, str], Awaitable[TaskRow | None]]


def _own_status(
    store: CarrierStore, tasks: TaskLookup
) -> Callable[[str, CarrierJobRef], Awaitable[JobStatus | None]]:
    """A job of our own couriers stands where its task does: delivered once the PoD is in."""

    async def status(tenant: str, ref: CarrierJobRef) -> JobStatus | None:
        async with store.read() as conn:
            job = await q.job_by_carrier_id(conn, tenant, ref.provider_code, ref.carrier_job_id)
        if job is None:
            return None
        task = await tasks(tenant, job.task_id)
        if task is None or task.status != "delivered" or task.delivered_at is None:
            return None
        return JobStatus("delivered", task.delivered_at)

    return status


@dataclass
class Carriers:
    """Everything the carrier routes need."""

    registry: CarrierRegistry
    shop: RateShop
    jobs: CarrierJobs

    @classmethod
    def build(
        cls,
        store: CarrierStore,
        section: CarriersSection,
        *,
        ring: KeyRing | None = None,
        session: aiohttp.ClientSession | None = None,
        weights: Weights | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        tasks: TaskLookup | None = None,
    ) -> Carriers:
        """Wire the parts with the section's key ring, thresholds and time limits.

        ``tasks`` (the cloud store's ``get_task``) lets the site's own couriers' jobs (the
        tariff connector) complete when the hub's PoD marks their task delivered.
        """
        policy = Policy(section.retry_attempts, section.quote_timeout_s, section.call_timeout_s)
        own = None if tasks is None else _own_status(store, tasks)
        registry = CarrierRegistry(
            store,
            ring or KeyRing.from_section(section),
            BreakerBoard.from_section(section, now),
            policy=policy,
            context=ProviderContext(session, now, own),
        )
        lifetime = timedelta(seconds=section.offer_lifetime_s)
        shop = RateShop(registry, offer_lifetime=lifetime, weights=weights, now=now)
        return cls(registry, shop, CarrierJobs(registry, now=now))
