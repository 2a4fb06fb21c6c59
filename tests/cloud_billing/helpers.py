"""Shared steps: record a cost, add an endpoint, read the delivery log."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from cloud_sync.billing import record_carrier_cost
from cloud_sync.store.billing_schema import billing_events, webhook_deliveries
from cloud_sync.store.engine import Database
from cloud_sync.webhooks import endpoints
from cloud_sync.webhooks.endpoints import EndpointRow
from cloud_sync.webhooks.outbox import DeliveryRow

from .conftest import TENANT


async def record(
    db: Database,
    job_id: str,
    occurred_at: datetime,
    *,
    amount_minor: int = 1234,
    currency: str = "EUR",
    components: dict[str, int] | None = None,
    tenant: str = TENANT,
    now: datetime | None = None,
) -> None:
    await db.write(
        lambda conn: record_carrier_cost(
            conn,
            tenant=tenant,
            job_id=job_id,
            amount_minor=amount_minor,
            currency=currency,
            components=components if components is not None else {"base": amount_minor},
            occurred_at=occurred_at,
            provider_code="tariff",
            task_id=f"task-{job_id}",
            now=now or occurred_at,
        )
    )


async def add_endpoint(
    db: Database, url: str, now: datetime, event_types: list[str] | None = None
) -> EndpointRow:
    return await db.write(
        lambda conn: endpoints.create(
            conn, TENANT, url=url, event_types=event_types or [], description=None, now=now
        )
    )


async def deliveries(db: Database) -> list[DeliveryRow]:
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(webhook_deliveries).order_by(webhook_deliveries.c.created_at)
        )
        return [DeliveryRow(**row._mapping) for row in rows]


async def event_count(db: Database) -> int:
    async with db.read() as conn:
        return int(
            (
                await conn.execute(sa.select(sa.func.count()).select_from(billing_events))
            ).scalar_one()
        )
