"""The pure codecs: every reader returns a valid value or raises our error, for any input."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_sync.carriers import karrio_codec, uber_codec
from cloud_sync.carriers.connector import Address, JobStatus
from cloud_sync.carriers.errors import (
    CarrierAuthError,
    CarrierError,
    CarrierRejectedError,
    CarrierTimeoutError,
    RateLimitedError,
    TransientCarrierError,
)
from cloud_sync.carriers.karrio_adapter import _unreachable
from cloud_sync.carriers.karrio_call import km
from cloud_sync.carriers.uber_webhooks import parse_event

from .conftest import quote_request

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
delivery_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text() | st.integers(),
        "status": st.sampled_from([*uber_codec.STATUS_MAP, "x"]) | st.integers(),
        "fee": st.integers() | st.booleans() | st.text(),
        "tip": st.integers() | st.none() | st.text(),
        "currency": st.sampled_from(["usd", "EUR", "e", "€€€"]) | st.integers(),
        "currency_type": st.sampled_from(["USD", "", "1234"]),
        "updated": st.sampled_from(["2026-11-25T12:00:00Z", "2026-11-25T12:00:00", "no"]),
        "created": st.sampled_from(["2026-11-25T12:00:00.000Z", 5]),
        "dropoff": json_values,
        "verification_requirements": json_values,
        "expires": st.sampled_from(["2026-11-25T12:15:00Z", "soon"]),
        "dropoff_eta": st.sampled_from(["2026-11-25T12:45:00Z", ""]),
    },
)


@settings(max_examples=150, deadline=None)
@given(delivery_like)
def test_uber_readers_return_or_raise_our_error(data: dict[str, Any]) -> None:
    for reader in (uber_codec.read_status, uber_codec.read_quote, uber_codec.read_job):
        with contextlib.suppress(CarrierError):
            reader(data)


@settings(max_examples=100, deadline=None)
@given(st.binary() | json_values.map(lambda v: json.dumps(v).encode()))
def test_uber_events_parse_or_raise_our_error(body: bytes) -> None:
    with contextlib.suppress(CarrierError):
        parse_event(body)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(st.text(), st.floats(), st.integers(), st.decimals()),
    st.sampled_from(["EUR", "JPY", "KWD"]),
)
def test_to_minor_returns_an_int_or_raises_our_error(amount: object, currency: str) -> None:
    with contextlib.suppress(CarrierError):
        assert isinstance(karrio_codec.to_minor(amount, currency), int)


def test_to_minor_scales_by_currency() -> None:
    assert karrio_codec.to_minor("14.755", "EUR") == 1476
    assert karrio_codec.to_minor(1200, "JPY") == 1200
    assert karrio_codec.to_minor("1.2345", "KWD") == 1235
    for bad in ("abc", float("inf")):
        with pytest.raises(karrio_codec.UnreadableAnswerError):
            karrio_codec.to_minor(bad, "EUR")
    assert karrio_codec.UnreadableAnswerError("x").kind == "unreadable"


def test_uber_status_time_and_currency_rules() -> None:
    base = {"id": "del_1", "status": "pending", "fee": 500, "currency": "usd"}
    status = uber_codec.read_status({**base, "created": "2026-11-25T12:00:00Z"})
    assert status == JobStatus("pending", NOW, status.cost)
    assert status.cost is not None
    assert status.cost.components == {"delivery_fee": 500}
    with pytest.raises(uber_codec.UnreadableAnswerError, match="no zone"):
        uber_codec.read_status({**base, "updated": "2026-11-25T12:00:00"})
    with pytest.raises(uber_codec.UnreadableAnswerError, match="bad updated"):
        uber_codec.read_status({**base, "updated": "yesterday"})
    with pytest.raises(uber_codec.UnreadableAnswerError, match="currency"):
        uber_codec.read_status({**base, "currency": "dollars", "created": "2026-11-25T12:00:00Z"})
    with pytest.raises(uber_codec.UnreadableAnswerError, match="tip"):
        uber_codec.read_cost({**base, "tip": "1"})
    assert uber_codec.UnreadableAnswerError("x").kind == "unreadable"


def test_uber_request_bodies() -> None:
    plain = Address("A", "+1", "1 Main St", "Springfield", "12345", "US")
    body = uber_codec.quote_body(quote_request(pickup=plain))
    assert "pickup_latitude" not in body
    assert body["dropoff_latitude"] == 52.5155
    assert body["pickup_ready_dt"].endswith("Z")
    assert json.loads(body["pickup_address"])["street_address"] == ["1 Main St"]


def test_uber_error_text() -> None:
    assert uber_codec.read_error(b'{"code": "x", "message": "y"}') == "x: y"
    assert uber_codec.read_error(b"[]") == ""
    assert uber_codec.read_error(b"oops") == "oops"


def test_karrio_rate_and_shipment_rules() -> None:
    ready = quote_request().ready_at
    rate = km.RateDetails(carrier_name="ups", carrier_id="ups", service="s", currency=None)
    with pytest.raises(karrio_codec.UnreadableAnswerError):
        karrio_codec.read_rate("karrio:ups", rate, ready, NOW)
    rated = km.RateDetails(
        carrier_name="ups", carrier_id="ups", service="s", currency="eur", total_charge=3.5,
        extra_charges=[km.ChargeDetails(name="Fuel", amount=None, currency="EUR")],
    )  # fmt: skip
    quote = karrio_codec.read_rate("karrio:ups", rated, ready, NOW)
    assert (quote.amount_minor, quote.currency) == (350, "EUR")
    assert quote.eta == ready + timedelta(days=1)  # no transit days: next day
    assert quote.raw == {"components": {}, "meta": None}
    assert karrio_codec.read_cost(None) is None
    assert (
        karrio_codec.read_cost(km.RateDetails(carrier_name="u", carrier_id="u", service="s"))
        is None
    )
    docs = km.Documents(label="%%% not base64")
    shipment = km.ShipmentDetails(
        carrier_name="ups",
        carrier_id="ups",
        tracking_number="1Z",
        shipment_identifier="1Z",
        docs=docs,
    )
    with pytest.raises(karrio_codec.UnreadableAnswerError):
        karrio_codec.read_shipment("karrio:ups", shipment)
    bare = km.ShipmentDetails(
        carrier_name="ups",
        carrier_id="ups",
        tracking_number="",
        shipment_identifier="",
        docs=km.Documents(),
    )
    with pytest.raises(karrio_codec.UnreadableAnswerError):
        karrio_codec.read_shipment("karrio:ups", bare)
    labelless = km.ShipmentDetails(
        carrier_name="ups", carrier_id="ups", tracking_number="1Z", shipment_identifier="1Z",
        docs=km.Documents(), label_type="ZPL",
    )  # fmt: skip
    assert karrio_codec.read_shipment("karrio:ups", labelless).label is None


def test_karrio_tracking_rules() -> None:
    def details(**changes: Any) -> Any:
        return km.TrackingDetails(
            carrier_name="ups", carrier_id="ups", tracking_number="1", **changes
        )

    day = "2026-11-25"
    events = [
        km.TrackingEvent(date=day, description="x", timestamp="bad"),
        km.TrackingEvent(date=day, description="y", timestamp=f"{day}T10:00:00"),
    ]
    status = karrio_codec.read_tracking(details(status="on_hold", events=events), NOW)
    assert (status.status, status.at) == ("picked_up", datetime(2026, 11, 25, 10, tzinfo=UTC))
    assert karrio_codec.read_tracking(details(events=[]), NOW).at == NOW
    assert (
        karrio_codec.read_tracking(details(status="return_to_sender", events=[]), NOW).status
        == "failed"
    )
    delivered = karrio_codec.read_tracking(details(delivered=True, events=[]), NOW)
    assert (delivered.status, delivered.proof) == ("delivered", None)


def test_karrio_messages_map_to_our_errors() -> None:
    def message(code: str) -> Any:
        return km.Message(carrier_name="ups", carrier_id="ups", code=code, message="m")

    assert isinstance(
        karrio_codec.error_for("k", "ups", [message("250002")], None, {}), CarrierAuthError
    )
    rejected = karrio_codec.error_for("k", "ups", [message("1")], None, {})
    assert type(rejected) is CarrierRejectedError
    assert isinstance(karrio_codec.error_for("k", "ups", [], 502, {}), TransientCarrierError)
    limited = karrio_codec.error_for("k", "ups", [], 429, {"Retry-After": "3"})
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after == 3.0
    # A status that is no failure leaves the messages to decide.
    assert type(karrio_codec.error_for("k", "ups", [message("1")], 200, {})) is CarrierRejectedError


def test_unreachable_reasons() -> None:
    assert isinstance(_unreachable("k", TimeoutError()), CarrierTimeoutError)
    other = _unreachable("k", ConnectionRefusedError())
    assert type(other) is TransientCarrierError
