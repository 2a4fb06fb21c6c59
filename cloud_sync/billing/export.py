"""Billing exports: each event in exactly one export; a repeated request, the same bytes.

Semantics (docs/carriers/billing-webhooks.md): the first request for a tenant and range
``[from, to)`` creates an export that claims every event of the tenant not yet exported
whose ``occurred_at`` is before ``to`` (late events from earlier ranges included: they
belong to the next export, as FOCUS lets a billing period carry charges of an earlier
charge period). The export's CSV and JSONL renderings are stored, so the same range asked
again answers the same export id and the same bytes, whatever was recorded since.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.errors import InvalidRequestError
from cloud_sync.protocol.fields import rfc3339
from cloud_sync.protocol.ids import new_ulid
from cloud_sync.store.billing_schema import billing_events, billing_exports
from cloud_sync.store.engine import insert_for
from cloud_sync.webhooks import outbox

from .events import from_row
from .focus import ExportHeader, render_csv, render_jsonl

Format = Literal["csv", "jsonl"]
# A year (and a leap day) covers an annual statement; a longer range is almost surely a
# typo and would build one very large response.
MAX_RANGE = timedelta(days=366)
# The webhook announcing an export (the treasury push).
EXPORT_WEBHOOK = "billing.export.created"
# The CSV rides inside the webhook up to this size; a larger one is fetched by id through
# the API (receivers cap request bodies, commonly at 1 MiB).
MAX_INLINE_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class Export:
    """A stored export and both renderings."""

    export_id: str
    tenant_id: str
    range_start: datetime
    range_end: datetime
    event_count: int
    csv_body: bytes
    jsonl_body: bytes
    created_at: datetime

    def body(self, fmt: Format) -> bytes:
        """The rendering in ``fmt``."""
        return self.csv_body if fmt == "csv" else self.jsonl_body


def check_range(start: datetime, end: datetime, now: datetime) -> None:
    """InvalidRequestError unless ``start < end <= now`` and the range is at most a year."""
    if start >= end:
        raise InvalidRequestError("from", "must be before to")
    if end > now:
        raise InvalidRequestError("to", "must not be in the future: the range must have ended")
    if end - start > MAX_RANGE:
        raise InvalidRequestError("to", f"a range spans at most {MAX_RANGE.days} days")


async def _find(
    conn: AsyncConnection, tenant: str, start: datetime, end: datetime
) -> Export | None:
    e = billing_exports
    query = sa.select(e).where(
        e.c.tenant_id == tenant, e.c.range_start == start, e.c.range_end == end
    )
    row = (await conn.execute(query)).first()
    return None if row is None else Export(**row._mapping)


async def export_range(
    conn: AsyncConnection, tenant: str, start: datetime, end: datetime, now: datetime
) -> tuple[Export, bool]:
    """The export of ``[start, end)``: the stored one, or a new one (then True)."""
    check_range(start, end, now)
    found = await _find(conn, tenant, start, end)
    if found is not None:
        return found, False
    export_id = new_ulid()
    claimed = await conn.execute(
        insert_for(conn.dialect.name, billing_exports)
        .values(
            export_id=export_id,
            tenant_id=tenant,
            range_start=start,
            range_end=end,
            event_count=0,
            csv_body=b"",
            jsonl_body=b"",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "range_start", "range_end"])
        .returning(billing_exports.c.export_id)
    )
    if claimed.first() is None:  # a concurrent request created it first
        winner = await _find(conn, tenant, start, end)
        assert winner is not None  # noqa: S101 - the conflict says the row exists
        return winner, False
    made = await _build(conn, ExportHeader(export_id, tenant, start, end), now)
    await outbox.enqueue(conn, tenant, EXPORT_WEBHOOK, webhook_data(made), now)
    return made, True


async def _build(conn: AsyncConnection, header: ExportHeader, now: datetime) -> Export:
    export_id, tenant, end = header.export_id, header.tenant_id, header.range_end
    ev = billing_events
    # Claiming with "export_id IS NULL" in the UPDATE: on PostgreSQL a concurrent export
    # that claimed a row first makes this one re-check and skip it, so no event is in two.
    await conn.execute(
        sa.update(ev)
        .where(ev.c.tenant_id == tenant, ev.c.export_id.is_(None), ev.c.occurred_at < end)
        .values(export_id=export_id)
    )
    rows = await conn.execute(
        sa.select(ev).where(ev.c.export_id == export_id).order_by(ev.c.occurred_at, ev.c.event_id)
    )
    events = [from_row(row._mapping) for row in rows]
    made = Export(
        export_id, tenant, header.range_start, end, len(events), render_csv(events, header),
        render_jsonl(events, header), now,
    )  # fmt: skip
    await conn.execute(
        sa.update(billing_exports)
        .where(billing_exports.c.export_id == export_id)
        .values(event_count=made.event_count, csv_body=made.csv_body, jsonl_body=made.jsonl_body)
    )
    return made


def digest(body: bytes) -> str:
    """The SHA-256 of a rendering, hex."""
    return hashlib.sha256(body).hexdigest()


def webhook_data(made: Export) -> dict[str, Any]:
    """The ``data`` of ``billing.export.created``: the CSV inline when small enough."""
    inline = len(made.csv_body) <= MAX_INLINE_BYTES
    return {
        "export_id": made.export_id,
        "from": rfc3339(made.range_start),
        "to": rfc3339(made.range_end),
        "event_count": made.event_count,
        "csv_sha256": digest(made.csv_body),
        "jsonl_sha256": digest(made.jsonl_body),
        "csv_base64": base64.b64encode(made.csv_body).decode("ascii") if inline else None,
    }
