"""Recording billing events: a carrier job's cost, once per job, with its webhook."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.protocol.fields import rfc3339
from cloud_sync.protocol.ids import new_ulid
from cloud_sync.store import utc_now
from cloud_sync.store.billing_schema import billing_events
from cloud_sync.store.engine import insert_for
from cloud_sync.webhooks import outbox

from .errors import InvalidAmountError
from .focus import BillingEvent
from .money import check_currency, to_decimal

CARRIER_COST = "carrier_cost"
# The webhook event type sent for each new carrier cost.
CARRIER_COST_WEBHOOK = "billing.carrier_cost"
# A job's cost has a handful of components (base, fuel, tolls, tip, tax); 32 is generous.
MAX_COMPONENTS = 32
# Far beyond any delivery's cost in any currency, well inside a signed 64-bit column.
MAX_AMOUNT_MINOR = 10**15


def _check_amount(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_AMOUNT_MINOR:
        raise InvalidAmountError(field, f"must be an integer of at most {MAX_AMOUNT_MINOR}")
    return value


def _check(currency: str, amount_minor: int, components: Mapping[str, int], at: datetime) -> None:
    check_currency(currency)
    _check_amount(amount_minor, "amount_minor")
    if len(components) > MAX_COMPONENTS:
        raise InvalidAmountError("components", f"at most {MAX_COMPONENTS} components")
    for name, value in components.items():
        if not isinstance(name, str) or not name or len(name) > 64:
            raise InvalidAmountError("components", "names are 1 to 64 characters")
        _check_amount(value, f"components.{name}")
    if at.tzinfo is None:
        raise InvalidAmountError("occurred_at", "must be timezone-aware")


async def record_carrier_cost(
    conn: AsyncConnection,
    *,
    tenant: str,
    job_id: str,
    amount_minor: int,
    currency: str,
    components: dict[str, int],
    occurred_at: datetime,
    provider_code: str | None = None,
    task_id: str | None = None,
    now: datetime | None = None,
) -> None:
    """Store the job's ``carrier_cost`` event and queue its webhook, in the caller's
    transaction; a second call for the same job is a no-op."""
    _check(currency, amount_minor, components, occurred_at)
    moment = utc_now() if now is None else now
    event = BillingEvent(
        new_ulid(), tenant, CARRIER_COST, job_id, provider_code, task_id, amount_minor,
        currency, dict(components), occurred_at,
    )  # fmt: skip
    statement = (
        insert_for(conn.dialect.name, billing_events)
        .values(
            event_id=event.event_id,
            tenant_id=tenant,
            event_type=CARRIER_COST,
            job_id=job_id,
            provider_code=provider_code,
            task_id=task_id,
            amount_minor=amount_minor,
            currency=currency,
            components=event.components,
            occurred_at=occurred_at,
            recorded_at=moment,
            export_id=None,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "event_type", "job_id"])
        .returning(billing_events.c.event_id)
    )
    if (await conn.execute(statement)).first() is None:
        return
    await outbox.enqueue(conn, tenant, CARRIER_COST_WEBHOOK, webhook_data(event), moment)


def webhook_data(event: BillingEvent) -> dict[str, Any]:
    """The ``data`` of a ``billing.carrier_cost`` webhook."""
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "job_id": event.job_id,
        "provider_code": event.provider_code,
        "task_id": event.task_id,
        "amount": to_decimal(event.amount_minor, event.currency),
        "amount_minor": event.amount_minor,
        "currency": event.currency,
        "components": event.components,
        "occurred_at": rfc3339(event.occurred_at),
    }


def from_row(mapping: sa.RowMapping) -> BillingEvent:
    """A stored ``billing_events`` row as a ``BillingEvent``."""
    names = BillingEvent.__slots__
    return BillingEvent(**{name: mapping[name] for name in names})


async def list_events(conn: AsyncConnection, tenant: str) -> list[BillingEvent]:
    """The tenant's billing events, in occurrence order."""
    query = (
        sa.select(billing_events)
        .where(billing_events.c.tenant_id == tenant)
        .order_by(billing_events.c.occurred_at, billing_events.c.event_id)
    )
    return [from_row(row._mapping) for row in await conn.execute(query)]
