"""The karrio adapter over DHL Express and UPS, each against its fake: rate, ship, track, void."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pypdfium2 as pdfium
import pytest

from cloud_sync.carriers.connector import CarrierJobRef, Connector, JobRequest, job_ref
from cloud_sync.carriers.errors import (
    CarrierAuthError,
    CarrierError,
    CarrierRejectedError,
    RateLimitedError,
    TransientCarrierError,
    UnknownProviderError,
)
from cloud_sync.carriers.fakes import CannedFailure
from cloud_sync.carriers.fakes.dhl_express import FakeDhlExpress
from cloud_sync.carriers.fakes.ups import FakeUps
from cloud_sync.carriers.karrio_adapter import (
    KarrioConfig,
    KarrioConnector,
    installed_carriers,
    settings_class,
)
from cloud_sync.carriers.registry import PartnerConfig, ProviderContext, factory_for

from .conftest import DROPOFF, PARCEL, PICKUP, quote_request


def dhl_connector(fake: FakeDhlExpress, **settings: object) -> KarrioConnector:
    base = {"site_id": "lockhub-site", "password": "dhl-pass", "account_number": "123456789"}
    return KarrioConnector(KarrioConfig("dhl_express", {**base, **settings}, server_url=fake.url))


def ups_connector(fake: FakeUps, **settings: object) -> KarrioConnector:
    base = {"client_id": "ups-client", "client_secret": "ups-secret", "account_number": "A1B2C3"}
    return KarrioConnector(KarrioConfig("ups", {**base, **settings}, server_url=fake.url))


def pdf_pages(data: bytes) -> int:
    document = pdfium.PdfDocument(data)
    try:
        return len(document)
    finally:
        document.close()


def test_both_carriers_are_installed() -> None:
    assert {"dhl_express", "ups"} <= set(installed_carriers())


async def test_dhl_express_quotes_books_tracks(dhl: FakeDhlExpress) -> None:
    connector = dhl_connector(dhl)
    assert isinstance(connector, Connector)
    assert connector.provider_code == "karrio:dhl_express"
    quotes = await connector.quote(quote_request())
    [quote] = quotes
    assert quote.service == "dhl_express_domestic"
    assert (quote.amount_minor, quote.currency) == (1475, "EUR")
    assert quote.raw is not None
    assert quote.raw["components"] == {"base_charge": 1250, "fuel_surcharge": 225}
    assert quote.eta.date() > quote_request().ready_at.date()
    sent = dhl.calls("/XMLShippingServlet")[-1].body.decode()
    assert "<GetQuote>" in sent
    assert "<SiteID>lockhub-site</SiteID>" in sent
    assert "<Postalcode>10243</Postalcode>" in sent

    job = await connector.create_job(
        JobRequest(quote, "task-1", PICKUP, DROPOFF, (PARCEL,)), idempotency_key="k"
    )
    assert job.carrier_job_id in dhl.shipments
    assert job.tracking_number == job.carrier_job_id
    assert job.tracking_url is not None
    label = await connector.get_label(job_ref(job))
    assert label is not None
    assert label.format == "pdf"
    assert label.data.startswith(b"%PDF")
    assert pdf_pages(label.data) == 1

    status = await connector.get_status(job_ref(job))
    assert status.status == "picked_up"
    dhl.deliver(job.carrier_job_id, "ERIKA")
    assert (await connector.get_status(job_ref(job))).status == "delivered"


async def test_dhl_express_cannot_cancel_through_karrio(dhl: FakeDhlExpress) -> None:
    connector = dhl_connector(dhl)
    [quote] = await connector.quote(quote_request())
    job = await connector.create_job(
        JobRequest(quote, "task-1", PICKUP, DROPOFF, (PARCEL,)), idempotency_key="k"
    )
    with pytest.raises(CarrierRejectedError, match="cannot cancel"):
        await connector.cancel_job(job_ref(job))


async def test_dhl_express_condition_errors_map_to_our_errors(dhl: FakeDhlExpress) -> None:
    with pytest.raises(CarrierAuthError):
        await dhl_connector(dhl, password="wrong").quote(quote_request())  # noqa: S106
    connector = dhl_connector(dhl)
    with pytest.raises(CarrierRejectedError) as caught:
        await connector.quote(quote_request(dropoff=replace(DROPOFF, postcode="00000")))
    assert "420505" in str(caught.value)
    with pytest.raises(CarrierRejectedError, match="weight"):
        await connector.quote(quote_request(parcels=(replace(PARCEL, weight_g=0),)))
    unknown = job_ref_for("karrio:dhl_express", "0000000000")
    with pytest.raises(CarrierRejectedError):
        await connector.get_status(unknown)


async def test_ups_quotes_books_tracks_and_voids(ups: FakeUps) -> None:
    connector = ups_connector(ups)
    quotes = await connector.quote(quote_request())
    by_service = {quote.service: quote for quote in quotes}
    assert set(by_service) == {"ups_standard_eu", "ups_worldwide_saver_eu"}
    standard = by_service["ups_standard_eu"]
    assert (standard.amount_minor, standard.currency) == (1127, "EUR")
    token_calls = ups.calls("/security/v1/oauth/token")
    assert len(token_calls) == 1
    assert token_calls[0].headers["Authorization"].startswith("Basic ")

    job = await connector.create_job(
        JobRequest(standard, "task-1", PICKUP, DROPOFF, (PARCEL,)), idempotency_key="k"
    )
    assert job.tracking_number.startswith("1Z")
    label = await connector.get_label(job_ref(job))
    assert label is not None
    assert label.data.startswith(b"%PDF")
    assert pdf_pages(label.data) == 1
    assert (await connector.get_status(job_ref(job))).status == "pending"

    await connector.cancel_job(job_ref(job))
    assert ups.packages[job.carrier_job_id].voided
    assert await connector.get_label(job_ref(job)) is None
    with pytest.raises(CarrierRejectedError) as caught:
        await connector.cancel_job(job_ref(job))
    assert "190117" in str(caught.value)
    assert len(ups.calls("/security/v1/oauth/token")) == 1  # the token was reused


async def test_ups_delivery_carries_the_signer(ups: FakeUps) -> None:
    connector = ups_connector(ups)
    quote = (await connector.quote(quote_request()))[0]
    job = await connector.create_job(
        JobRequest(quote, "task-1", PICKUP, DROPOFF, (PARCEL,)), idempotency_key="k"
    )
    ups.deliver(job.carrier_job_id, "ERIKA M")
    status = await connector.get_status(job_ref(job))
    assert status.status == "delivered"
    assert status.proof is not None
    assert status.proof.signer_name == "ERIKA M"


async def test_ups_error_responses_map_to_our_errors(ups: FakeUps) -> None:
    connector = ups_connector(ups)
    with pytest.raises(CarrierRejectedError) as rejected:
        await connector.quote(quote_request(dropoff=replace(DROPOFF, postcode="00000")))
    assert rejected.value.status == 400
    assert "111285" in str(rejected.value)

    ups.fail_next(
        CannedFailure(
            429,
            b'{"response":{"errors":[{"code":"429","message":"Rate limit"}]}}',
            headers={"Retry-After": "12"},
        ),
        path="rating",
    )
    with pytest.raises(RateLimitedError) as limited:
        await connector.quote(quote_request())
    assert limited.value.retry_after == 12.0

    ups.fail_next(
        CannedFailure(503, b"<html>Service Unavailable</html>", "text/html"), path="rating"
    )
    with pytest.raises(TransientCarrierError) as down:
        await connector.quote(quote_request())
    assert down.value.status == 503

    with pytest.raises(CarrierRejectedError):
        await connector.get_status(job_ref_for("karrio:ups", "1ZUNKNOWN"))


async def test_ups_wrong_credentials_are_an_auth_error(ups: FakeUps) -> None:
    with pytest.raises(CarrierAuthError):
        await ups_connector(ups, client_secret="wrong").quote(quote_request())  # noqa: S106


async def test_an_unreachable_carrier_is_transient() -> None:
    connector = KarrioConnector(
        KarrioConfig(
            "dhl_express",
            {"site_id": "s", "password": "p", "account_number": "1"},
            server_url="http://127.0.0.1:1",
        )
    )
    with pytest.raises(TransientCarrierError):
        await connector.quote(quote_request())


def test_server_url_override_and_default() -> None:
    creds = {"client_id": "i", "client_secret": "s"}
    assert settings_class("ups", None)(**creds, test_mode=True).server_url == (
        "https://wwwcie.ups.com"
    )
    assert settings_class("ups", None)(**creds).server_url == "https://onlinetools.ups.com"
    local = settings_class("ups", "http://127.0.0.1:9")(**creds)
    assert local.server_url == "http://127.0.0.1:9"
    assert settings_class("ups", "http://127.0.0.1:9") is settings_class(
        "ups", "http://127.0.0.1:9"
    )


def test_bad_configuration_is_our_error() -> None:
    with pytest.raises(UnknownProviderError, match="not installed"):
        KarrioConnector(KarrioConfig("pigeon_post", {}))
    with pytest.raises(CarrierError, match="settings"):
        KarrioConnector(KarrioConfig("ups", {"client_id": "only"}))


async def test_the_registry_builds_karrio_carriers(ups: FakeUps) -> None:
    partner = PartnerConfig(
        "p1", "acme", "karrio:ups", "UPS",
        {"client_id": "ups-client", "client_secret": "ups-secret"},
        {"account_number": "A1B2C3", "server_url": ups.url, "test_mode": True},
    )  # fmt: skip
    built = factory_for("karrio:ups")(partner, ProviderContext())
    assert built.provider_code == "karrio:ups"
    assert len(await built.quote(quote_request())) == 2
    assert await built.get_manifest(date.today()) is None
    with pytest.raises(CarrierError):
        factory_for("karrio:ups")(replace(partner, settings={"server_url": 5}), ProviderContext())


def job_ref_for(code: str, number: str) -> CarrierJobRef:
    return CarrierJobRef(code, number, number)


async def test_an_unreadable_answer_is_our_error(ups: FakeUps) -> None:
    connector = ups_connector(ups)
    ups.fail_next(CannedFailure(200, b"<html>maintenance</html>", "text/html"), path="rating")
    with pytest.raises(CarrierError) as caught:
        await connector.quote(quote_request())
    assert caught.value.kind == "unreadable"


async def test_old_labels_make_room_for_new_ones(
    ups: FakeUps, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cloud_sync.carriers.karrio_adapter.MAX_KEPT_LABELS", 1)
    connector = ups_connector(ups)
    quote = (await connector.quote(quote_request()))[0]
    request = JobRequest(quote, "task-1", PICKUP, DROPOFF, (PARCEL,))
    first = await connector.create_job(request, idempotency_key="a")
    second = await connector.create_job(request, idempotency_key="b")
    assert await connector.get_label(job_ref(first)) is None
    assert await connector.get_label(job_ref(second)) is not None
