"""Billing events as FOCUS-style rows, rendered as CSV or JSON Lines (pure, no I/O).

Columns are a documented subset of the FinOps FOCUS specification plus ``x_`` custom
columns (FOCUS requires the prefix for anything it does not define). Date/times are UTC
``YYYY-MM-DDTHH:mm:ssZ``; amounts are decimal strings in the billing currency; an empty
CSV cell and a JSON ``null`` are FOCUS nulls.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .money import to_decimal

COLUMNS: tuple[str, ...] = (
    "BilledCost",
    "BillingAccountId",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargeCategory",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ProviderName",
    "ResourceId",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "Tags",
    "x_BillingEventId",
    "x_EventType",
    "x_ExportId",
    "x_OccurredAt",
    "x_BilledCostMinorUnits",
    "x_CostComponents",
)
# FOCUS allowed values for what a carrier charges per delivery job.
CHARGE_CATEGORY = "Usage"
CHARGE_FREQUENCY = "Usage-Based"
SERVICE_CATEGORY = "Other"
SERVICE_NAME = "Carrier Delivery"
RESOURCE_TYPE = "Carrier Job"
# A charge's period is the UTC day it occurred in (FOCUS: start inclusive, end exclusive);
# x_OccurredAt keeps the exact moment.
CHARGE_PERIOD = timedelta(days=1)
CSV_MEDIA_TYPE = "text/csv"
JSONL_MEDIA_TYPE = "application/jsonl"


@dataclass(frozen=True, slots=True)
class BillingEvent:
    """One stored billing event."""

    event_id: str
    tenant_id: str
    event_type: str
    job_id: str
    provider_code: str | None
    task_id: str | None
    amount_minor: int
    currency: str
    components: dict[str, int]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class ExportHeader:
    """What every row of one export shares."""

    export_id: str
    tenant_id: str
    range_start: datetime
    range_end: datetime


def timestamp(moment: datetime) -> str:
    """FOCUS date/time: UTC, seconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def row(event: BillingEvent, header: ExportHeader) -> dict[str, str | None]:
    """The FOCUS row of one event (None is null)."""
    day = _day(event.occurred_at)
    components = {
        name: to_decimal(amount, event.currency) for name, amount in event.components.items()
    }
    provider = event.provider_code
    description = f"Delivery job {event.job_id}" + (f" by {provider}" if provider else "")
    return {
        "BilledCost": to_decimal(event.amount_minor, event.currency),
        "BillingAccountId": header.tenant_id,
        "BillingCurrency": event.currency,
        "BillingPeriodStart": timestamp(header.range_start),
        "BillingPeriodEnd": timestamp(header.range_end),
        "ChargeCategory": CHARGE_CATEGORY,
        "ChargeDescription": description,
        "ChargeFrequency": CHARGE_FREQUENCY,
        "ChargePeriodStart": timestamp(day),
        "ChargePeriodEnd": timestamp(day + CHARGE_PERIOD),
        "ProviderName": provider,
        "ResourceId": event.job_id,
        "ResourceType": RESOURCE_TYPE,
        "ServiceCategory": SERVICE_CATEGORY,
        "ServiceName": SERVICE_NAME,
        "Tags": None if event.task_id is None else _json({"lockhub/task_id": event.task_id}),
        "x_BillingEventId": event.event_id,
        "x_EventType": event.event_type,
        "x_ExportId": header.export_id,
        "x_OccurredAt": timestamp(event.occurred_at),
        "x_BilledCostMinorUnits": str(event.amount_minor),
        "x_CostComponents": _json(components),
    }


def render_csv(events: Sequence[BillingEvent], header: ExportHeader) -> bytes:
    """RFC 4180 CSV (CRLF, minimal quoting) with a header line, UTF-8."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for event in events:
        values = row(event, header)
        writer.writerow(["" if values[name] is None else values[name] for name in COLUMNS])
    return out.getvalue().encode("utf-8")


def render_jsonl(events: Sequence[BillingEvent], header: ExportHeader) -> bytes:
    """One JSON object per line (the same columns, in order), UTF-8, LF-terminated."""
    lines = [
        json.dumps(row(event, header), separators=(",", ":"), ensure_ascii=False) + "\n"
        for event in events
    ]
    return "".join(lines).encode("utf-8")
