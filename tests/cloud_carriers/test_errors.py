"""HTTP answers and Retry-After headers into our errors; the stored-request codec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud_sync.carriers import errors
from cloud_sync.carriers.connector import (
    Address,
    CarrierJob,
    CarrierJobRef,
    Parcel,
    Quote,
    QuoteRequest,
    job_ref,
)
from cloud_sync.carriers.errors import (
    MAX_RETRY_AFTER_S,
    CarrierAuthError,
    CarrierRejectedError,
    RateLimitedError,
    TransientCarrierError,
    for_status,
    parse_retry_after,
)
from cloud_sync.carriers.settings import CarriersSection
from cloud_sync.carriers.wire import request_from, request_json, valid_quote

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("7", 7.0),
        (" 0 ", 0.0),
        ("999999", MAX_RETRY_AFTER_S),
        ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),
        ("Sun, 01 Mar 2026 12:00:30", 30.0),
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def test_retry_after_defaults_to_the_wall_clock() -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    found = parse_retry_after(later.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert found is not None
    assert 3500 < found <= 3600


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None), (302, None), (400, CarrierRejectedError), (404, CarrierRejectedError),
        (401, CarrierAuthError), (403, CarrierAuthError), (429, RateLimitedError),
        (500, TransientCarrierError), (503, TransientCarrierError),
    ],
)  # fmt: skip
def test_for_status(status: int, kind: type[Exception] | None) -> None:
    found = for_status(status, {"Retry-After": "3"}, provider_code="x", detail="why", now=NOW)
    if kind is None:
        assert found is None
        return
    assert type(found) is kind
    assert str(found) == f"x answered {status}: why"
    assert found.provider_code == "x"
    if isinstance(found, TransientCarrierError):
        assert (found.retry_after, found.status) == (3.0, status)


def test_every_error_has_a_kind() -> None:
    kinds = {
        errors.CarrierError("x").kind, errors.TransientCarrierError("x").kind,
        errors.CarrierTimeoutError("x").kind, errors.RateLimitedError("x").kind,
        errors.CarrierRejectedError("x").kind, errors.CarrierAuthError("x").kind,
        errors.BreakerOpenError("x", None).kind, errors.CredentialError("x").kind,
        errors.UnknownProviderError("x").kind,
    }  # fmt: skip
    assert len(kinds) == 9
    offer = errors.OfferUnavailableError("o1", "expired")
    assert (offer.offer_id, offer.reason, str(offer)) == ("o1", "expired", "offer o1 is expired")


def test_stored_requests_round_trip_and_refuse_damage() -> None:
    here = Address("A", "+1", "1 St", "X", "1", "DE", 1.5, None)
    request = QuoteRequest("t", "acme", here, here, (Parcel(1, 2, 3, 4, "box"),), NOW, NOW)
    assert request_from(request_json(request)) == request
    assert (
        request_from(request_json(QuoteRequest("t", "a", here, here, (), NOW))).deliver_by is None
    )
    with pytest.raises(errors.CarrierError, match="unreadable: KeyError"):
        request_from({"task_id": "t"})


@pytest.mark.parametrize(
    ("changes", "ok"),
    [({}, True), ({"currency": "eur"}, False), ({"amount_minor": -1}, False),
     ({"eta": datetime(2026, 3, 1)}, False), ({"service": ""}, False)],
)  # fmt: skip
def test_valid_quote(changes: dict[str, object], ok: bool) -> None:
    values: dict[str, object] = {
        "provider_code": "p", "service": "s", "amount_minor": 1, "currency": "EUR",
        "eta": NOW, "expires_at": NOW, **changes,
    }  # fmt: skip
    assert valid_quote(Quote(**values)) is ok  # type: ignore[arg-type]


def test_job_ref() -> None:
    job = CarrierJob("p", "j1", "T1", "pending")
    assert job_ref(job) == CarrierJobRef("p", "j1", "T1")


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"keys": "k1:x", "key_file": "/k.toml", "active_key": "k1"}, "not both"),
        ({"keys": "k1:x"}, "is required when keys is set"),
    ],
)
def test_settings_refuse_two_key_sources_or_no_active_key(
    values: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        CarriersSection.model_validate(values)
