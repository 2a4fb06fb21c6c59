"""Uber Direct's signed webhooks reach the cloud's route and move the carrier job along."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

import cloud_sync.carriers.uber_direct  # noqa: F401 - registers "uber_direct"
from cloud_sync.api import build_cloud_app
from cloud_sync.carriers.credentials import KeyRing, generate_key
from cloud_sync.carriers.fakes.uber import Account, FakeUberDirect
from cloud_sync.carriers.service import Carriers, carrier_store
from cloud_sync.carriers.settings import CarriersSection
from cloud_sync.protocol.fields import rfc3339
from cloud_sync.service import CloudService

from .conftest import START, TENANT, SettableClock
from .test_carrier_desk import ADDRESS, RECIPIENT

WEBHOOK_KEY = b"uber-webhook-signing-key-0123456789"


@pytest.fixture
async def uber() -> AsyncIterator[FakeUberDirect]:
    fake = FakeUberDirect(Account("cust-1", "client-1", "secret-1", webhook_key=WEBHOOK_KEY))
    await fake.start()
    yield fake
    await fake.close()


async def test_a_signed_delivered_event_completes_the_job(
    service: CloudService, clock: SettableClock, uber: FakeUberDirect
) -> None:
    async with aiohttp.ClientSession() as session:
        carriers = Carriers.build(
            carrier_store(service.store),
            CarriersSection(),
            ring=KeyRing.parse(f"k1:{generate_key()}", "k1"),
            session=session,
        )
        app = build_cloud_app(service, lambda _: None, ready=dict, carriers=carriers)
        key = await service.create_api_key(TENANT)
        headers = {"Authorization": f"Bearer {key}"}
        async with TestClient(TestServer(app)) as client:

            async def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
                response = await client.request(method, path, headers=headers, **kwargs)
                return response.status, await response.json()

            partner = {
                "provider_code": "uber_direct",
                "name": "Uber Direct",
                "credentials": {
                    "customer_id": "cust-1", "client_id": "client-1",
                    "client_secret": "secret-1", "webhook_signing_key": WEBHOOK_KEY.decode(),
                },
                "settings": {"api_base": uber.url, "token_url": f"{uber.url}/oauth/v2/token"},
            }  # fmt: skip
            status, created = await call("POST", f"/v1/{TENANT}/carrier-partners", json=partner)
            assert status == 201, created
            shop = {
                "pickup": ADDRESS, "dropoff": RECIPIENT, "ready_at": rfc3339(START),
                "parcels": [{"weight_g": 900, "length_cm": 20, "width_cm": 20, "height_cm": 5}],
            }  # fmt: skip
            _, offers = await call("POST", f"/v1/{TENANT}/tasks/task-9/rate-shop", json=shop)
            offer_id = offers["offers"][0]["offer_id"]
            status, job = await call("POST", f"/v1/{TENANT}/offers/{offer_id}/accept")
            assert status == 201, job

            route = f"/v1/webhooks/uber-direct/{created['partner_id']}"
            uber.account.webhook_urls = [str(client.make_url(route))]
            uber.complete(job["carrier_job_id"], signer_name="Ada", picture=True)
            uber.account.webhook_key = b"someone-else's-key"
            assert await uber.send_webhook(job["carrier_job_id"]) == [401]  # forged: refused
            _, unchanged = await call("GET", f"/v1/{TENANT}/carrier-jobs/{job['job_id']}")
            assert unchanged["status"] != "delivered"

            uber.account.webhook_key = WEBHOOK_KEY
            assert await uber.send_webhook(job["carrier_job_id"]) == [200]
            _, done = await call("GET", f"/v1/{TENANT}/carrier-jobs/{job['job_id']}")
            assert done["status"] == "delivered"
            assert done["cost"]["amount_minor"] > 0
            assert done["proof"]["signer_name"] == "Ada"
            # Another partner id, or none: every signature is refused.
            uber.account.webhook_urls = [str(client.make_url("/v1/webhooks/uber-direct/01JUNK"))]
            assert await uber.send_webhook(job["carrier_job_id"]) == [401]
