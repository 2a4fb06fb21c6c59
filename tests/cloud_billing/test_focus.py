"""Minor units to decimal strings per currency, and the FOCUS-style rows (pure)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest

from cloud_sync.billing.errors import InvalidAmountError
from cloud_sync.billing.focus import (
    COLUMNS,
    BillingEvent,
    ExportHeader,
    render_csv,
    render_jsonl,
)
from cloud_sync.billing.money import to_decimal

HEADER = ExportHeader(
    "01JEXPORT00000000000000000", "acme",
    datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC),
)  # fmt: skip


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (1500, "JPY", "1500"),
        (0, "JPY", "0"),
        (1234, "EUR", "12.34"),
        (5, "EUR", "0.05"),
        (100, "EUR", "1.00"),
        (-250, "EUR", "-2.50"),
        (12345, "BHD", "12.345"),
        (5, "BHD", "0.005"),
        (10000, "CLF", "1.0000"),
        (199, "XYZ", "1.99"),
    ],
)
def test_amounts_follow_the_currency_exponent(minor: int, currency: str, expected: str) -> None:
    assert to_decimal(minor, currency) == expected


@pytest.mark.parametrize("currency", ["eur", "EU", "EURO", "", "€UR"])
def test_a_currency_that_is_not_a_code_is_refused(currency: str) -> None:
    with pytest.raises(InvalidAmountError, match="ISO 4217"):
        to_decimal(1, currency)


def event(**changes: object) -> BillingEvent:
    fields: dict[str, object] = {
        "event_id": "01JEVENT000000000000000000", "tenant_id": "acme",
        "event_type": "carrier_cost", "job_id": "job-1", "provider_code": "uber_direct",
        "task_id": "task-1", "amount_minor": 1234, "currency": "EUR",
        "components": {"base": 1000, "fuel": 234},
        "occurred_at": datetime(2026, 3, 5, 17, 4, 5, 123000, tzinfo=UTC),
    }  # fmt: skip
    return BillingEvent(**(fields | changes))  # type: ignore[arg-type]


def test_csv_has_the_focus_columns_and_values() -> None:
    body = render_csv([event(), event(provider_code=None, task_id=None, currency="JPY",
                                      amount_minor=900, components={})], HEADER)  # fmt: skip
    assert body.startswith(b"BilledCost,BillingAccountId,BillingCurrency,")
    assert b"\r\n" in body
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert tuple(rows[0]) == COLUMNS
    first, second = rows
    assert first["BilledCost"] == "12.34"
    assert first["BillingCurrency"] == "EUR"
    assert first["BillingAccountId"] == "acme"
    assert first["BillingPeriodStart"] == "2026-03-01T00:00:00Z"
    assert first["BillingPeriodEnd"] == "2026-04-01T00:00:00Z"
    assert first["ChargePeriodStart"] == "2026-03-05T00:00:00Z"
    assert first["ChargePeriodEnd"] == "2026-03-06T00:00:00Z"
    assert first["ChargeCategory"] == "Usage"
    assert first["ChargeFrequency"] == "Usage-Based"
    assert first["ChargeDescription"] == "Delivery job job-1 by uber_direct"
    assert first["ProviderName"] == "uber_direct"
    assert first["ResourceId"] == "job-1"
    assert first["ServiceCategory"] == "Other"
    assert json.loads(first["Tags"]) == {"lockhub/task_id": "task-1"}
    assert first["x_OccurredAt"] == "2026-03-05T17:04:05Z"
    assert first["x_BilledCostMinorUnits"] == "1234"
    assert json.loads(first["x_CostComponents"]) == {"base": "10.00", "fuel": "2.34"}
    assert first["x_ExportId"] == HEADER.export_id
    # FOCUS nulls are empty cells.
    assert (second["ProviderName"], second["Tags"]) == ("", "")
    assert second["BilledCost"] == "900"
    assert second["ChargeDescription"] == "Delivery job job-1"


def test_jsonl_carries_the_same_columns_with_nulls() -> None:
    body = render_jsonl([event(), event(task_id=None)], HEADER)
    lines = body.decode().splitlines()
    assert len(lines) == 2
    assert body.endswith(b"\n")
    first, second = (json.loads(line) for line in lines)
    assert tuple(first) == COLUMNS
    assert first["BilledCost"] == "12.34"
    assert second["Tags"] is None


def test_an_empty_export_is_a_header_line_or_nothing() -> None:
    assert render_csv([], HEADER) == (",".join(COLUMNS) + "\r\n").encode()
    assert render_jsonl([], HEADER) == b""
