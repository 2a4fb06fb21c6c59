"""Webhook endpoints per tenant: stored rows, secrets and their rotation (SQL, no HTTP)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.protocol.ids import new_ulid
from cloud_sync.store.billing_schema import webhook_attempts, webhook_deliveries, webhook_endpoints

from .signing import generate_secret

# Long enough for every receiver to deploy the new secret, short enough that a leaked old
# secret stops working the next day.
ROTATION_OVERLAP = timedelta(hours=24)
# Why the worker switched an endpoint off (a receiver answering 410 Gone).
DISABLED_GONE = "gone"
DISABLED_BY_USER = "user"


@dataclass(slots=True)
class EndpointRow:
    """One webhook endpoint as stored."""

    endpoint_id: str
    tenant_id: str
    url: str
    description: str | None
    event_types: list[str]
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign now: the current one, and the old one until it expires."""
        expires = self.previous_secret_expires_at
        if self.previous_secret is not None and expires is not None and now < expires:
            return [self.secret, self.previous_secret]
        return [self.secret]

    def accepts(self, event_type: str) -> bool:
        """Whether this endpoint subscribed to ``event_type`` (no filter: every type)."""
        return not self.event_types or event_type in self.event_types


def _row(mapping: Any) -> EndpointRow:
    return EndpointRow(**mapping)


async def create(
    conn: AsyncConnection,
    tenant_id: str,
    *,
    url: str,
    event_types: Sequence[str],
    description: str | None,
    now: datetime,
) -> EndpointRow:
    """Store a new enabled endpoint with a fresh secret."""
    row = EndpointRow(
        new_ulid(), tenant_id, url, description, list(event_types), generate_secret(),
        None, None, True, None, now, now,
    )  # fmt: skip
    await conn.execute(sa.insert(webhook_endpoints).values(**_values(row)))
    return row


def _values(row: EndpointRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in EndpointRow.__slots__}


async def get(conn: AsyncConnection, tenant_id: str, endpoint_id: str) -> EndpointRow | None:
    """The tenant's endpoint, or None."""
    query = sa.select(webhook_endpoints).where(
        webhook_endpoints.c.tenant_id == tenant_id,
        webhook_endpoints.c.endpoint_id == endpoint_id,
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _row(row._mapping)


async def list_for(conn: AsyncConnection, tenant_id: str) -> list[EndpointRow]:
    """The tenant's endpoints, oldest first."""
    query = (
        sa.select(webhook_endpoints)
        .where(webhook_endpoints.c.tenant_id == tenant_id)
        .order_by(webhook_endpoints.c.created_at, webhook_endpoints.c.endpoint_id)
    )
    return [_row(row._mapping) for row in await conn.execute(query)]


async def enabled_for(conn: AsyncConnection, tenant_id: str) -> list[EndpointRow]:
    """The tenant's enabled endpoints."""
    return [row for row in await list_for(conn, tenant_id) if row.enabled]


async def update(conn: AsyncConnection, row: EndpointRow, now: datetime, **changes: Any) -> None:
    """Apply ``changes`` to ``row`` and store them."""
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = now
    await conn.execute(
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.endpoint_id == row.endpoint_id)
        .values(**changes, updated_at=now)
    )


async def rotate(conn: AsyncConnection, row: EndpointRow, now: datetime) -> EndpointRow:
    """A new secret; the old one keeps signing for ``ROTATION_OVERLAP``."""
    await update(
        conn, row, now, secret=generate_secret(), previous_secret=row.secret,
        previous_secret_expires_at=now + ROTATION_OVERLAP,
    )  # fmt: skip
    return row


async def disable(conn: AsyncConnection, endpoint_id: str, reason: str, now: datetime) -> None:
    """Switch an endpoint off; its pending deliveries wait until it is enabled again."""
    await conn.execute(
        sa.update(webhook_endpoints)
        .where(webhook_endpoints.c.endpoint_id == endpoint_id)
        .values(enabled=False, disabled_reason=reason, updated_at=now)
    )


async def delete(conn: AsyncConnection, endpoint_id: str) -> None:
    """Remove an endpoint with its delivery log."""
    deliveries = sa.select(webhook_deliveries.c.delivery_id).where(
        webhook_deliveries.c.endpoint_id == endpoint_id
    )
    await conn.execute(
        sa.delete(webhook_attempts).where(webhook_attempts.c.delivery_id.in_(deliveries))
    )
    await conn.execute(
        sa.delete(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id)
    )
    await conn.execute(
        sa.delete(webhook_endpoints).where(webhook_endpoints.c.endpoint_id == endpoint_id)
    )
