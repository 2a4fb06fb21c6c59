"""Queries over the carrier tables; ``CarrierStore`` runs them in read or write transactions."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .carrier_schema import (
    carrier_callbacks,
    carrier_jobs,
    carrier_labels,
    carrier_partners,
    carrier_stats,
    marketplace_offers,
)
from .engine import Database, insert_for

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PartnerRow:
    """A tenant's carrier partner; ``credentials`` stays sealed here."""

    partner_id: str
    tenant_id: str
    provider_code: str
    name: str
    credentials: str | None
    credentials_kid: str | None
    settings: dict[str, Any]
    status: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class OfferRow:
    """A stored, ranked quote."""

    offer_id: str
    tenant_id: str
    task_id: str
    partner_id: str
    provider_code: str
    service: str
    amount_minor: int
    currency: str
    eta: datetime
    expires_at: datetime
    carrier_quote_id: str | None
    raw: dict[str, Any] | None
    score: float
    score_parts: dict[str, float]
    rank: int
    request: dict[str, Any]
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JobRow:
    """A carrier job booked from an accepted offer."""

    job_id: str
    tenant_id: str
    task_id: str
    partner_id: str
    offer_id: str
    idempotency_key: str
    provider_code: str
    service: str
    carrier_job_id: str | None
    tracking_number: str | None
    status: str
    status_at: datetime
    tracking_url: str | None
    label_url: str | None
    manifest_url: str | None
    pickup: dict[str, Any]
    dropoff: dict[str, Any]
    parcels: list[dict[str, Any]]
    quoted_amount_minor: int
    currency: str
    eta: datetime
    deliver_by: datetime | None
    cost_amount_minor: int | None
    cost_currency: str | None
    cost_components: dict[str, int] | None
    cost_captured_at: datetime | None
    proof: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CallbackRow:
    """One audited carrier failure (or vendor callback)."""

    tenant_id: str | None
    partner_id: str | None
    provider_code: str
    operation: str
    kind: str
    status_code: int | None
    attempt: int | None
    detail: str
    payload: dict[str, Any] | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class StatsRow:
    """A partner's finished jobs: delivered (of which on time) and failed."""

    partner_id: str
    delivered: int = 0
    on_time: int = 0
    failed: int = 0


# Partners.


async def insert_partner(conn: AsyncConnection, row: PartnerRow) -> None:
    """Store a new partner."""
    await conn.execute(sa.insert(carrier_partners).values(**dataclasses.asdict(row)))


async def partner_by_id(conn: AsyncConnection, partner_id: str) -> PartnerRow | None:
    """A live partner by id alone (for carriers' webhooks, which name no tenant)."""
    query = sa.select(carrier_partners).where(
        carrier_partners.c.partner_id == partner_id, carrier_partners.c.status != "deleted"
    )
    row = (await conn.execute(query)).first()
    return None if row is None else PartnerRow(**row._mapping)


async def get_partner(conn: AsyncConnection, tenant_id: str, partner_id: str) -> PartnerRow | None:
    """The tenant's partner (deleted ones are gone)."""
    query = sa.select(carrier_partners).where(
        carrier_partners.c.tenant_id == tenant_id,
        carrier_partners.c.partner_id == partner_id,
        carrier_partners.c.status != "deleted",
    )
    row = (await conn.execute(query)).first()
    return None if row is None else PartnerRow(**row._mapping)


async def list_partners(
    conn: AsyncConnection, tenant_id: str, status: str | None = None
) -> list[PartnerRow]:
    """The tenant's partners (of one status), oldest first."""
    query = sa.select(carrier_partners).where(
        carrier_partners.c.tenant_id == tenant_id, carrier_partners.c.status != "deleted"
    )
    if status is not None:
        query = query.where(carrier_partners.c.status == status)
    query = query.order_by(carrier_partners.c.created_at, carrier_partners.c.partner_id)
    return [PartnerRow(**row._mapping) for row in await conn.execute(query)]


async def update_partner(conn: AsyncConnection, row: PartnerRow) -> None:
    """Write every column of ``row`` back."""
    values = dataclasses.asdict(row)
    await conn.execute(
        sa.update(carrier_partners)
        .where(carrier_partners.c.partner_id == values.pop("partner_id"))
        .values(**values)
    )


async def all_sealed(conn: AsyncConnection) -> list[PartnerRow]:
    """Every partner holding sealed credentials, for a key rotation."""
    query = sa.select(carrier_partners).where(carrier_partners.c.credentials.is_not(None))
    return [PartnerRow(**row._mapping) for row in await conn.execute(query.with_for_update())]


# Offers.


async def insert_offers(conn: AsyncConnection, rows: Sequence[OfferRow]) -> None:
    """Store a rate shop's offers."""
    if rows:
        await conn.execute(sa.insert(marketplace_offers), [dataclasses.asdict(row) for row in rows])


async def get_offer(
    conn: AsyncConnection, tenant_id: str, offer_id: str, *, lock: bool = False
) -> OfferRow | None:
    """The tenant's offer (locked for update when asked)."""
    query = sa.select(marketplace_offers).where(
        marketplace_offers.c.tenant_id == tenant_id, marketplace_offers.c.offer_id == offer_id
    )
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    return None if row is None else OfferRow(**row._mapping)


async def set_offer_status(conn: AsyncConnection, offer_id: str, status: str) -> None:
    """Mark an offer open or accepted."""
    await conn.execute(
        sa.update(marketplace_offers)
        .where(marketplace_offers.c.offer_id == offer_id)
        .values(status=status)
    )


# Jobs.


async def insert_job(conn: AsyncConnection, row: JobRow) -> None:
    """Store a new job."""
    await conn.execute(sa.insert(carrier_jobs).values(**dataclasses.asdict(row)))


async def get_job(
    conn: AsyncConnection, tenant_id: str, job_id: str, *, lock: bool = False
) -> JobRow | None:
    """The tenant's job (locked for update when asked)."""
    query = sa.select(carrier_jobs).where(
        carrier_jobs.c.tenant_id == tenant_id, carrier_jobs.c.job_id == job_id
    )
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    return None if row is None else JobRow(**row._mapping)


async def job_by_key(conn: AsyncConnection, tenant_id: str, key: str) -> JobRow | None:
    """The tenant's job booked under idempotency key ``key``."""
    query = sa.select(carrier_jobs).where(
        carrier_jobs.c.tenant_id == tenant_id, carrier_jobs.c.idempotency_key == key
    )
    row = (await conn.execute(query)).first()
    return None if row is None else JobRow(**row._mapping)


async def job_by_carrier_id(
    conn: AsyncConnection, tenant_id: str, provider_code: str, carrier_job_id: str
) -> JobRow | None:
    """The tenant's job the carrier knows as ``carrier_job_id``."""
    query = sa.select(carrier_jobs).where(
        carrier_jobs.c.tenant_id == tenant_id,
        carrier_jobs.c.provider_code == provider_code,
        carrier_jobs.c.carrier_job_id == carrier_job_id,
    )
    row = (await conn.execute(query)).first()
    return None if row is None else JobRow(**row._mapping)


async def put_label(
    conn: AsyncConnection, job_id: str, fmt: str, data: bytes, fetched_at: datetime
) -> None:
    """Keep the carrier's own label for ``job_id``."""
    await conn.execute(
        sa.insert(carrier_labels).values(
            job_id=job_id, format=fmt, data=data, fetched_at=fetched_at
        )
    )


async def get_label(conn: AsyncConnection, job_id: str) -> tuple[str, bytes] | None:
    """The carrier's own label of ``job_id`` (format, bytes), if it gave one."""
    query = sa.select(carrier_labels.c.format, carrier_labels.c.data).where(
        carrier_labels.c.job_id == job_id
    )
    row = (await conn.execute(query)).first()
    return None if row is None else (str(row.format), bytes(row.data))


async def jobs_booked_between(
    conn: AsyncConnection, tenant_id: str, provider_code: str, start: datetime, end: datetime
) -> list[JobRow]:
    """The tenant's jobs with ``provider_code`` created in [start, end), oldest first."""
    query = (
        sa.select(carrier_jobs)
        .where(
            carrier_jobs.c.tenant_id == tenant_id,
            carrier_jobs.c.provider_code == provider_code,
            carrier_jobs.c.created_at >= start,
            carrier_jobs.c.created_at < end,
        )
        .order_by(carrier_jobs.c.created_at, carrier_jobs.c.job_id)
    )
    return [JobRow(**row._mapping) for row in await conn.execute(query)]


async def update_job(conn: AsyncConnection, row: JobRow) -> None:
    """Write every column of ``row`` back."""
    values = dataclasses.asdict(row)
    await conn.execute(
        sa.update(carrier_jobs)
        .where(carrier_jobs.c.job_id == values.pop("job_id"))
        .values(**values)
    )


async def delete_job(conn: AsyncConnection, job_id: str) -> None:
    """Forget a job whose booking failed."""
    await conn.execute(sa.delete(carrier_jobs).where(carrier_jobs.c.job_id == job_id))


# Audit and stats.


async def add_callback(conn: AsyncConnection, row: CallbackRow) -> None:
    """Audit one failure."""
    await conn.execute(sa.insert(carrier_callbacks).values(**dataclasses.asdict(row)))


async def list_callbacks(conn: AsyncConnection, partner_id: str | None = None) -> list[CallbackRow]:
    """Audited failures (of one partner), oldest first."""
    query = sa.select(carrier_callbacks).order_by(carrier_callbacks.c.id)
    if partner_id is not None:
        query = query.where(carrier_callbacks.c.partner_id == partner_id)
    rows = await conn.execute(query)
    return [CallbackRow(**{k: v for k, v in row._mapping.items() if k != "id"}) for row in rows]


async def get_stats(conn: AsyncConnection, partner_ids: Iterable[str]) -> dict[str, StatsRow]:
    """Stats by partner; a partner without finished jobs has none."""
    wanted = list(partner_ids)
    query = sa.select(
        carrier_stats.c.partner_id,
        carrier_stats.c.delivered,
        carrier_stats.c.on_time,
        carrier_stats.c.failed,
    ).where(carrier_stats.c.partner_id.in_(wanted))
    return {row.partner_id: StatsRow(**row._mapping) for row in await conn.execute(query)}


async def bump_stats(conn: AsyncConnection, dialect: str, change: StatsRow, now: datetime) -> None:
    """Add ``change`` to the partner's stats (atomically, whoever else is adding)."""
    table = carrier_stats
    insert = insert_for(dialect, table).values(**dataclasses.asdict(change), updated_at=now)
    await conn.execute(
        insert.on_conflict_do_update(
            index_elements=[table.c.partner_id],
            set_={
                "delivered": table.c.delivered + change.delivered,
                "on_time": table.c.on_time + change.on_time,
                "failed": table.c.failed + change.failed,
                "updated_at": now,
            },
        )
    )


class CarrierStore:
    """The carrier tables over the cloud's ``Database`` (shared with ``CloudStore``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.db.dialect

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a read transaction."""
        async with self.db.read() as conn:
            yield conn

    async def write(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` in one write transaction (again on a serialization failure)."""
        return await self.db.write(work)
