"""Uber Direct webhooks in: signatures verified over the raw body, events read into statuses."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from cloud_sync.carriers.connector import JobRequest
from cloud_sync.carriers.fakes.uber import FakeUberDirect
from cloud_sync.carriers.uber_codec import UnreadableAnswerError
from cloud_sync.carriers.uber_direct import UberDirectConfig, UberDirectConnector
from cloud_sync.carriers.uber_webhooks import (
    DeliveryUpdate,
    parse_event,
    verify_uber,
    webhook_handler,
)
from cloud_sync.webhooks.errors import WebhookVerificationError

from .conftest import DROPOFF, PARCEL, PICKUP, quote_request

KEY = b"uber-signing-key"


@pytest.fixture
async def delivery_id(uber: FakeUberDirect) -> AsyncIterator[str]:
    connector = UberDirectConnector(
        UberDirectConfig.from_partner(
            {
                "customer_id": uber.account.customer_id,
                "client_id": uber.account.client_id,
                "client_secret": uber.account.client_secret,
            },
            {"api_base": uber.url, "token_url": f"{uber.url}/oauth/v2/token"},
        )
    )
    [quote] = await connector.quote(quote_request())
    job = await connector.create_job(
        JobRequest(quote, "task-9", PICKUP, DROPOFF, (PARCEL,)), idempotency_key="w"
    )
    yield job.carrier_job_id
    await connector.aclose()


def sign(body: bytes, key: bytes = KEY) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def test_a_good_signature_is_accepted(uber: FakeUberDirect, delivery_id: str) -> None:
    body = uber.event(delivery_id)
    verify_uber([KEY], body, {"X-Uber-Signature": sign(body)})
    verify_uber([b"old-key", KEY], body, {"x-postmates-signature": sign(body)})


def test_a_tampered_body_is_refused(uber: FakeUberDirect, delivery_id: str) -> None:
    body = uber.event(delivery_id)
    signature = sign(body)
    tampered = body.replace(b'"pending"', b'"delivered"')
    assert tampered != body
    with pytest.raises(WebhookVerificationError) as caught:
        verify_uber([KEY], tampered, {"x-uber-signature": signature})
    assert caught.value.reason == "bad_signature"


def test_a_wrong_key_is_refused(uber: FakeUberDirect, delivery_id: str) -> None:
    body = uber.event(delivery_id)
    with pytest.raises(WebhookVerificationError):
        verify_uber([KEY], body, {"x-uber-signature": sign(body, b"someone-else")})


@pytest.mark.parametrize("headers", [{}, {"x-uber-signature": "not-hex"}, {"x-uber-signature": ""}])
def test_a_missing_or_garbled_signature_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(WebhookVerificationError):
        verify_uber([KEY], b"{}", headers)


def test_a_delivery_status_event_reads_into_our_status(
    uber: FakeUberDirect, delivery_id: str
) -> None:
    uber.advance(delivery_id, "pickup_complete")
    update = parse_event(uber.event(delivery_id))
    assert update.kind == "event.delivery_status"
    assert update.carrier_job_id == delivery_id
    assert update.external_id == "task-9"
    assert update.status.status == "picked_up"
    assert update.event_id is not None
    assert update.courier_lat is None


def test_a_courier_update_carries_the_location(uber: FakeUberDirect, delivery_id: str) -> None:
    uber.advance(delivery_id, "dropoff")
    update = parse_event(uber.event(delivery_id, "event.courier_update"))
    assert (update.courier_lat, update.courier_lng) == (52.5206, 13.4094)
    assert update.status.status == "picked_up"
    event = json.loads(uber.event(delivery_id, "event.courier_update"))
    del event["location"]
    event["data"]["courier"] = {"name": "Cori R.", "location": {"lat": 52.5, "lng": 13.4}}
    from_data = parse_event(json.dumps(event).encode())
    assert (from_data.courier_lat, from_data.courier_lng) == (52.5, 13.4)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        json.dumps({"kind": "event.refund"}).encode(),
        json.dumps({"kind": "event.delivery_status", "data": "x"}).encode(),
        json.dumps({"kind": "event.delivery_status", "data": {"id": "del_1"}}).encode(),
    ],
)
def test_unreadable_events_raise_our_error(body: bytes) -> None:
    with pytest.raises(UnreadableAnswerError):
        parse_event(body)


async def test_the_handler_takes_signed_webhooks_from_the_fake(
    uber: FakeUberDirect, delivery_id: str
) -> None:
    received: list[DeliveryUpdate] = []

    async def keys() -> list[bytes]:
        return [KEY]

    async def on_update(update: DeliveryUpdate) -> None:
        received.append(update)

    app = web.Application()
    app.router.add_post("/hooks/uber", webhook_handler(keys, on_update))
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("/hooks/uber"))
        uber.account.webhook_urls.append(url)
        uber.complete(delivery_id, signer_name="Erika")
        assert await uber.send_webhook(delivery_id) == [200]
        async with ClientSession() as session:
            body = uber.event(delivery_id)
            async with session.post(url, data=body, headers={"x-uber-signature": "00"}) as bad:
                assert bad.status == 401
            junk = b'{"kind": "nope"}'
            async with session.post(url, data=junk, headers={"x-uber-signature": sign(junk)}) as r:
                assert r.status == 400
            big = {"x-uber-signature": "00", "Content-Length": str(2 << 20)}
            async with session.post(url, data=io.BytesIO(b"x" * (2 << 20)), headers=big) as r:
                assert r.status == 413
    [update] = received
    assert update.status.status == "delivered"
    assert update.status.proof is not None
    assert update.status.proof.signer_name == "Erika"
