"""Uber Direct against its fake: quote, book, idempotency, tokens, errors, proof."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from cloud_sync.carriers.connector import CarrierJob, Connector, JobRequest, Proof, job_ref
from cloud_sync.carriers.errors import (
    CarrierAuthError,
    CarrierError,
    CarrierRejectedError,
    CarrierTimeoutError,
    RateLimitedError,
    TransientCarrierError,
)
from cloud_sync.carriers.fakes import CannedFailure
from cloud_sync.carriers.fakes.uber import FakeUberDirect
from cloud_sync.carriers.registry import PartnerConfig, ProviderContext, factory_for
from cloud_sync.carriers.uber_codec import DropoffVerification, UnreadableAnswerError
from cloud_sync.carriers.uber_direct import UberDirectConfig, UberDirectConnector

from .conftest import DROPOFF, PARCEL, PICKUP, quote_request


def config(fake: FakeUberDirect, **changes: object) -> UberDirectConfig:
    creds = {
        "customer_id": fake.account.customer_id,
        "client_id": fake.account.client_id,
        "client_secret": fake.account.client_secret,
    }
    settings: dict[str, object] = {"api_base": fake.url, "token_url": f"{fake.url}/oauth/v2/token"}
    for name, value in changes.items():
        if name in creds:
            creds[name] = str(value)
        else:
            settings[name] = value
    return UberDirectConfig.from_partner(creds, settings)


@pytest.fixture
async def connector(uber: FakeUberDirect) -> AsyncIterator[UberDirectConnector]:
    made = UberDirectConnector(config(uber, dropoff_pincode=True, dropoff_signature=True))
    yield made
    await made.aclose()


async def book(connector: UberDirectConnector, key: str = "key-1") -> tuple[JobRequest, CarrierJob]:
    [quote] = await connector.quote(quote_request())
    request = JobRequest(quote, "task-1", PICKUP, DROPOFF, (PARCEL,))
    return request, await connector.create_job(request, idempotency_key=key)


async def test_quote_then_create_with_the_quote_id(
    uber: FakeUberDirect, connector: UberDirectConnector
) -> None:
    assert isinstance(connector, Connector)
    [quote] = await connector.quote(quote_request())
    assert quote.provider_code == "uber_direct"
    assert (quote.amount_minor, quote.currency) == (799, "EUR")
    assert quote.carrier_quote_id is not None
    assert quote.carrier_quote_id.startswith("dqt_")
    assert quote.expires_at < quote.eta
    request = JobRequest(quote, "task-1", PICKUP, DROPOFF, (PARCEL,))
    job = await connector.create_job(request, idempotency_key="key-1")
    assert job.carrier_job_id.startswith("del_")
    assert job.status == "pending"
    assert job.tracking_url is not None
    sent = json.loads(uber.calls("/deliveries")[-1].body)
    assert sent["quote_id"] == quote.carrier_quote_id
    assert sent["idempotency_key"] == "key-1"
    assert sent["external_id"] == "task-1"
    assert sent["dropoff_verification"]["pincode"] == {"enabled": True}
    assert sent["dropoff_verification"]["signature_requirement"]["collect_signer_name"] is True
    assert json.loads(sent["dropoff_address"])["zip_code"] == "10243"
    assert sent["manifest_items"][0]["weight"] == 1200


async def test_a_retried_create_with_the_same_key_returns_the_same_delivery(
    uber: FakeUberDirect, connector: UberDirectConnector
) -> None:
    request, first = await book(connector, "key-same")
    again = await connector.create_job(request, idempotency_key="key-same")
    assert again == first
    assert len(uber.deliveries) == 1
    other = await connector.create_job(request, idempotency_key="key-other")
    assert other.carrier_job_id != first.carrier_job_id


async def test_the_token_is_refreshed_when_it_expires(uber: FakeUberDirect) -> None:
    uber.token_lifetime_s = 30  # inside the refresh margin: every call fetches anew
    connector = UberDirectConnector(config(uber))
    try:
        await connector.quote(quote_request())
        await connector.quote(quote_request())
        assert len(uber.calls("/oauth/v2/token")) == 2
    finally:
        await connector.aclose()


async def test_a_refused_token_is_replaced_once(
    uber: FakeUberDirect, connector: UberDirectConnector
) -> None:
    await connector.quote(quote_request())
    uber.expire_tokens()
    await connector.quote(quote_request())
    assert len(uber.calls("/oauth/v2/token")) == 2
    token_form = uber.calls("/oauth/v2/token")[0].body.decode()
    assert "scope=eats.deliveries" in token_form
    assert "grant_type=client_credentials" in token_form


async def test_a_token_refused_twice_is_an_auth_error(uber: FakeUberDirect) -> None:
    connector = UberDirectConnector(config(uber))
    uber.fail_next(CannedFailure(401, b'{"code":"unauthorized"}'), times=2, path="delivery_quotes")
    try:
        with pytest.raises(CarrierAuthError):
            await connector.quote(quote_request())
    finally:
        await connector.aclose()


async def test_wrong_client_credentials_are_an_auth_error(uber: FakeUberDirect) -> None:
    connector = UberDirectConnector(config(uber, client_secret="wrong"))  # noqa: S106
    try:
        with pytest.raises(CarrierAuthError):
            await connector.quote(quote_request())
    finally:
        await connector.aclose()


async def test_429_with_retry_after_is_rate_limited(
    uber: FakeUberDirect, connector: UberDirectConnector
) -> None:
    body = b'{"code":"customer_limited","message":"Too many requests"}'
    uber.fail_next(CannedFailure(429, body, headers={"Retry-After": "7"}), path="delivery_quotes")
    with pytest.raises(RateLimitedError) as caught:
        await connector.quote(quote_request())
    assert caught.value.retry_after == 7.0
    assert "customer_limited" in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_transient(
    uber: FakeUberDirect, connector: UberDirectConnector, status: int
) -> None:
    uber.fail_next(CannedFailure(status, b'{"code":"unknown_error"}'), path="delivery_quotes")
    with pytest.raises(TransientCarrierError) as caught:
        await connector.quote(quote_request())
    assert caught.value.status == status
    assert not isinstance(caught.value, RateLimitedError)


async def test_4xx_is_a_rejection(uber: FakeUberDirect, connector: UberDirectConnector) -> None:
    with pytest.raises(CarrierRejectedError) as caught:
        await connector.quote(quote_request(dropoff=replace(DROPOFF, postcode="00000")))
    assert caught.value.status == 400
    assert "address_undeliverable" in str(caught.value)


async def test_an_expired_quote_id_is_a_rejection(
    uber: FakeUberDirect, connector: UberDirectConnector
) -> None:
    [quote] = await connector.quote(quote_request())
    uber.quotes.clear()
    with pytest.raises(CarrierRejectedError):
        await connector.create_job(
            JobRequest(quote, "task-1", PICKUP, DROPOFF, (PARCEL,)), idempotency_key="k"
        )


async def test_a_quote_without_id_cannot_be_booked(connector: UberDirectConnector) -> None:
    [quote] = await connector.quote(quote_request())
    bare = replace(quote, carrier_quote_id=None)
    with pytest.raises(CarrierError):
        await connector.create_job(
            JobRequest(bare, "t", PICKUP, DROPOFF, (PARCEL,)), idempotency_key="k"
        )


async def test_unreachable_is_transient(uber: FakeUberDirect) -> None:
    connector = UberDirectConnector(config(uber, api_base="http://127.0.0.1:1"))
    try:
        with pytest.raises(TransientCarrierError):
            await connector.quote(quote_request())
    finally:
        await connector.aclose()


async def test_a_body_that_is_not_json_is_unreadable(
    uber: FakeUberDirect, connector: UberDirectConnector
) -> None:
    uber.fail_next(CannedFailure(200, b"<html>", content_type="text/html"), path="delivery_quotes")
    with pytest.raises(UnreadableAnswerError):
        await connector.quote(quote_request())
    uber.fail_next(CannedFailure(200, b"[1]"), path="delivery_quotes")
    with pytest.raises(UnreadableAnswerError):
        await connector.quote(quote_request())


async def test_status_follows_the_delivery_and_maps_the_proof(
    uber: FakeUberDirect, connector: UberDirectConnector
) -> None:
    _, job = await book(connector)
    ref, delivery_id = job_ref(job), job.carrier_job_id
    assert (await connector.get_status(ref)).status == "pending"
    uber.advance(delivery_id, "pickup_complete")
    assert (await connector.get_status(ref)).status == "picked_up"
    pin = uber.deliveries[delivery_id]["verification_requirements"]["pincode"]["value"]
    uber.complete(delivery_id, signer_name="E. Mustermann", picture=True, pin=pin, tip=150)
    status = await connector.get_status(ref)
    assert status.status == "delivered"
    assert status.proof == Proof(
        pincode_verified=True,
        picture_url=f"https://pod.uber.invalid/{delivery_id}/photo.jpg",
        signature_url=f"https://pod.uber.invalid/{delivery_id}/signature.png",
        signer_name="E. Mustermann",
    )
    assert status.cost is not None
    assert status.cost.amount_minor == 949
    assert status.cost.components == {"delivery_fee": 799, "tip": 150}
    assert status.cost.currency == "EUR"


async def test_a_wrong_pin_is_not_verified(
    uber: FakeUberDirect, connector: UberDirectConnector
) -> None:
    _, job = await book(connector)
    uber.complete(job.carrier_job_id, pin="wrong")
    status = await connector.get_status(job_ref(job))
    assert status.proof is not None
    assert status.proof.pincode_verified is False


async def test_cancel_before_pickup_and_refused_after(
    uber: FakeUberDirect, connector: UberDirectConnector
) -> None:
    _, first = await book(connector, "k1")
    ref = job_ref(first)
    await connector.cancel_job(ref)
    assert (await connector.get_status(ref)).status == "cancelled"
    [quote] = await connector.quote(quote_request())
    second = await connector.create_job(
        JobRequest(quote, "task-2", PICKUP, DROPOFF, (PARCEL,)), idempotency_key="k2"
    )
    uber.advance(second.carrier_job_id, "dropoff")
    with pytest.raises(CarrierRejectedError) as caught:
        await connector.cancel_job(job_ref(second))
    assert "noncancelable_delivery" in str(caught.value)
    assert first.carrier_job_id != second.carrier_job_id


async def test_returned_is_failed_and_unknown_status_unreadable(
    uber: FakeUberDirect, connector: UberDirectConnector
) -> None:
    _, job = await book(connector)
    ref, delivery_id = job_ref(job), job.carrier_job_id
    uber.advance(delivery_id, "returned")
    assert (await connector.get_status(ref)).status == "failed"
    uber.advance(delivery_id, "teleported")
    with pytest.raises(UnreadableAnswerError):
        await connector.get_status(ref)


async def test_no_label_and_no_manifest(connector: UberDirectConnector) -> None:
    _, job = await book(connector)
    assert await connector.get_label(job_ref(job)) is None
    assert await connector.get_manifest(date.today()) is None


def test_credentials_missing_a_field_are_an_auth_error() -> None:
    with pytest.raises(CarrierAuthError):
        UberDirectConfig.from_partner({"customer_id": "c"}, {})


@pytest.mark.parametrize("settings", [{"dropoff_pincode": "yes"}, {"api_base": ""}, {"scope": 3}])
def test_bad_settings_are_refused(settings: dict[str, object]) -> None:
    creds = {"customer_id": "c", "client_id": "i", "client_secret": "s"}
    with pytest.raises(CarrierError):
        UberDirectConfig.from_partner(creds, settings)


def test_the_registry_builds_uber_direct() -> None:
    creds = {"customer_id": "c", "client_id": "i", "client_secret": "s"}
    partner = PartnerConfig("p1", "acme", "uber_direct", "Uber", creds, {"dropoff_pincode": True})
    built = factory_for("uber_direct")(partner, ProviderContext())
    assert isinstance(built, UberDirectConnector)
    assert built.provider_code == "uber_direct"


def test_config_repr_hides_the_secret() -> None:
    made = UberDirectConfig("cus", "id", "s3cr3t-value")
    assert "s3cr3t-value" not in repr(made)
    assert made.dropoff == DropoffVerification()
    assert DropoffVerification().as_json() is None
    assert DropoffVerification(picture=True).as_json() == {"picture": True}


async def test_token_endpoint_failures_map_to_our_errors(uber: FakeUberDirect) -> None:
    connector = UberDirectConnector(config(uber))
    try:
        uber.fail_next(CannedFailure(503, b"{}"), path="oauth")
        with pytest.raises(TransientCarrierError):
            await connector.quote(quote_request())
        uber.fail_next(CannedFailure(200, b'{"token_type": "Bearer"}'), path="oauth")
        with pytest.raises(CarrierError, match="access_token"):
            await connector.quote(quote_request())
        # No expires_in: the token is kept for the default hour, so one fetch serves both.
        uber.fail_next(
            CannedFailure(200, json.dumps({"access_token": "IA.fixed"}).encode()), path="oauth"
        )
        uber.tokens["IA.fixed"] = uber.now() + timedelta(hours=2)
        await connector.quote(quote_request())
        await connector.quote(quote_request())
        assert len(uber.calls("/oauth/v2/token")) == 3
    finally:
        await connector.aclose()


async def test_an_unreachable_token_endpoint_is_transient(uber: FakeUberDirect) -> None:
    nowhere = "http://127.0.0.1:1/oauth/v2/token"
    connector = UberDirectConnector(config(uber, token_url=nowhere))
    try:
        with pytest.raises(TransientCarrierError):
            await connector.quote(quote_request())
    finally:
        await connector.aclose()


async def test_a_slow_answer_is_a_timeout(uber: FakeUberDirect) -> None:
    release = asyncio.Event()

    async def token(_request: web.Request) -> web.Response:
        return web.json_response({"access_token": "IA.slow", "expires_in": 3600})

    async def stall(_request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    slow = web.Application()
    slow.router.add_post("/oauth/v2/token", token)
    slow.router.add_post("/v1/customers/cus_lockhub/delivery_quotes", stall)
    async with TestServer(slow, host="127.0.0.1") as server:
        base = str(server.make_url("")).rstrip("/")
        timeout = aiohttp.ClientTimeout(total=0.2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            connector = UberDirectConnector(
                config(uber, api_base=base, token_url=f"{base}/oauth/v2/token"), session=session
            )
            with pytest.raises(CarrierTimeoutError):
                await connector.quote(quote_request())
            release.set()
            await connector.aclose()  # not its session: stays open
            assert not session.closed
