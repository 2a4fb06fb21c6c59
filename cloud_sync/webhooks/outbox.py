"""The webhook outbox: deliveries enqueued in the caller's transaction, claimed by workers.

A delivery is written in the same transaction as the change it reports, so an event is
never lost or sent for a change that rolled back. Workers claim due deliveries with a lease
(``next_attempt_at`` moves past the request timeout); a worker that dies mid-request leaves
the delivery due again when the lease runs out, so deliveries survive restarts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.protocol.fields import rfc3339
from cloud_sync.protocol.ids import new_ulid
from cloud_sync.store.billing_schema import webhook_attempts, webhook_deliveries, webhook_endpoints

from . import endpoints
from .endpoints import EndpointRow

# The Standard Webhooks retry schedule, in seconds after the previous attempt: immediately,
# 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (eight attempts over about 28 hours).
RETRY_SCHEDULE: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
# A manual retry is one attempt: it starts at the last step, so a failure ends it.
MANUAL_STEP = len(RETRY_SCHEDULE) - 1
PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
# The error text kept in the delivery log (never a response body: it may echo secrets).
MAX_ERROR = 512
TEST_EVENT = "webhook.test"


@dataclass(slots=True)
class DeliveryRow:
    """One message to one endpoint and where its attempts stand."""

    delivery_id: str
    tenant_id: str
    endpoint_id: str
    message_id: str
    event_type: str
    payload: str
    status: str
    attempts: int
    step: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime


@dataclass(slots=True)
class AttemptRow:
    """One HTTP attempt of a delivery."""

    attempt: int
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(slots=True)
class Outcome:
    """What an attempt ended with: a status code, or an error before any answer."""

    status_code: int | None
    error: str | None
    duration_ms: int


def encode_payload(event_type: str, data: dict[str, Any], now: datetime) -> str:
    """The body the spec recommends: ``{"type", "timestamp", "data"}`` as compact JSON."""
    body = {"type": event_type, "timestamp": rfc3339(now), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def new_message_id() -> str:
    """A webhook-id: unique per message, the same on every attempt and endpoint."""
    return f"msg_{new_ulid()}"


async def enqueue(
    conn: AsyncConnection, tenant_id: str, event_type: str, data: dict[str, Any], now: datetime
) -> list[DeliveryRow]:
    """Queue ``event_type`` for every enabled endpoint of the tenant that subscribed to it."""
    targets = [
        row for row in await endpoints.enabled_for(conn, tenant_id) if row.accepts(event_type)
    ]
    if not targets:
        return []
    payload, message_id = encode_payload(event_type, data, now), new_message_id()
    return [
        await _insert(
            conn, row, message_id=message_id, event_type=event_type, payload=payload, now=now
        )
        for row in targets
    ]


async def enqueue_to(
    conn: AsyncConnection, endpoint: EndpointRow, event_type: str, data: dict[str, Any],
    now: datetime,
) -> DeliveryRow:  # fmt: skip
    """Queue a message for one endpoint, whatever its filter (the test event)."""
    payload = encode_payload(event_type, data, now)
    message_id = new_message_id()
    return await _insert(
        conn, endpoint, message_id=message_id, event_type=event_type, payload=payload, now=now
    )


async def _insert(
    conn: AsyncConnection, endpoint: EndpointRow, *, message_id: str, event_type: str,
    payload: str, now: datetime,
) -> DeliveryRow:  # fmt: skip
    row = DeliveryRow(
        new_ulid(), endpoint.tenant_id, endpoint.endpoint_id, message_id, event_type, payload,
        PENDING, 0, 0, now + timedelta(seconds=RETRY_SCHEDULE[0]), None, None, None, now,
    )  # fmt: skip
    values = {name: getattr(row, name) for name in DeliveryRow.__slots__}
    await conn.execute(sa.insert(webhook_deliveries).values(**values))
    return row


async def claim_due(
    conn: AsyncConnection, now: datetime, limit: int, lease: timedelta
) -> list[tuple[DeliveryRow, EndpointRow]]:
    """Take up to ``limit`` due deliveries of enabled endpoints for ``lease``.

    PostgreSQL: FOR UPDATE SKIP LOCKED lets workers claim side by side. SQLite: the write
    transaction (BEGIN IMMEDIATE) already makes the claim exclusive.
    """
    d, e = webhook_deliveries, webhook_endpoints
    query = (
        sa.select(d, *[column.label(f"e_{column.name}") for column in e.columns])
        .join(e, e.c.endpoint_id == d.c.endpoint_id)
        .where(d.c.status == PENDING, d.c.next_attempt_at <= now, e.c.enabled.is_(True))
        .order_by(d.c.next_attempt_at, d.c.delivery_id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=d)
    rows = (await conn.execute(query)).all()
    claimed = []
    for row in rows:
        mapping = row._mapping
        delivery = DeliveryRow(**{name: mapping[name] for name in DeliveryRow.__slots__})
        endpoint = EndpointRow(**{name: mapping[f"e_{name}"] for name in EndpointRow.__slots__})
        claimed.append((delivery, endpoint))
    if claimed:
        ids = [delivery.delivery_id for delivery, _ in claimed]
        await conn.execute(
            sa.update(d).where(d.c.delivery_id.in_(ids)).values(next_attempt_at=now + lease)
        )
    return claimed


async def record(
    conn: AsyncConnection,
    delivery: DeliveryRow,
    outcome: Outcome,
    now: datetime,
    *,
    status: str,
    step: int,
    next_attempt_at: datetime | None,
) -> bool:
    """Store an attempt and the delivery's new state; False if another worker got there."""
    attempt = delivery.attempts + 1
    error = None if outcome.error is None else outcome.error[:MAX_ERROR]
    d = webhook_deliveries
    changed = await conn.execute(
        sa.update(d)
        .where(d.c.delivery_id == delivery.delivery_id, d.c.attempts == delivery.attempts)
        .values(
            attempts=attempt,
            status=status,
            step=step,
            next_attempt_at=next_attempt_at,
            last_attempt_at=now,
            last_status_code=outcome.status_code,
            last_error=error,
        )
    )
    if changed.rowcount != 1:
        return False
    await conn.execute(
        sa.insert(webhook_attempts).values(
            delivery_id=delivery.delivery_id,
            attempt=attempt,
            attempted_at=now,
            status_code=outcome.status_code,
            error=error,
            duration_ms=outcome.duration_ms,
        )
    )
    return True


async def get(conn: AsyncConnection, tenant_id: str, delivery_id: str) -> DeliveryRow | None:
    """The tenant's delivery, or None."""
    d = webhook_deliveries
    query = sa.select(d).where(d.c.tenant_id == tenant_id, d.c.delivery_id == delivery_id)
    row = (await conn.execute(query)).first()
    return None if row is None else DeliveryRow(**row._mapping)


async def retry(conn: AsyncConnection, delivery: DeliveryRow, now: datetime) -> DeliveryRow:
    """Make the delivery due now for one more attempt (a manual retry)."""
    d = webhook_deliveries
    await conn.execute(
        sa.update(d)
        .where(d.c.delivery_id == delivery.delivery_id)
        .values(status=PENDING, step=MANUAL_STEP, next_attempt_at=now)
    )
    delivery.status, delivery.step, delivery.next_attempt_at = PENDING, MANUAL_STEP, now
    return delivery


async def for_endpoint(
    conn: AsyncConnection, endpoint_id: str, limit: int
) -> list[tuple[DeliveryRow, list[AttemptRow]]]:
    """An endpoint's newest deliveries with their attempts, newest first."""
    d, a = webhook_deliveries, webhook_attempts
    query = (
        sa.select(d)
        .where(d.c.endpoint_id == endpoint_id)
        .order_by(d.c.created_at.desc(), d.c.delivery_id.desc())
        .limit(limit)
    )
    deliveries = [DeliveryRow(**row._mapping) for row in await conn.execute(query)]
    ids = [row.delivery_id for row in deliveries]
    attempts: dict[str, list[AttemptRow]] = {delivery_id: [] for delivery_id in ids}
    if ids:
        rows = await conn.execute(
            sa.select(a).where(a.c.delivery_id.in_(ids)).order_by(a.c.delivery_id, a.c.attempt)
        )
        for row in rows:
            fields = {name: row._mapping[name] for name in AttemptRow.__slots__}
            attempts[row.delivery_id].append(AttemptRow(**fields))
    return [(row, attempts[row.delivery_id]) for row in deliveries]
