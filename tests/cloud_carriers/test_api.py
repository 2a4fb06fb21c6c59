"""The carrier routes end to end: real aiohttp carriers, the real store on both backends."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
import structlog
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.api import build_cloud_app
from cloud_sync.api.carriers import add_carrier_routes
from cloud_sync.billing.events import list_events
from cloud_sync.carriers.credentials import KeyRing
from cloud_sync.carriers.service import Carriers, carrier_store
from cloud_sync.protocol.envelope import Signer
from cloud_sync.protocol.fields import rfc3339
from cloud_sync.service import CloudService
from cloud_sync.store import CloudStore
from cloud_sync.store import carriers as q
from cloud_sync.store.carrier_schema import carrier_partners
from tests.cloud.conftest import SettableClock

from .carrier_server import PROVIDER, Answer, CarrierServer
from .conftest import START, TARIFF, section

SECRET = "sk_live_very-secret-api-key-42"  # noqa: S105 - a fake key to hunt for in answers
PARTNERS = "/v1/acme/carrier-partners"
ADDRESS = {
    "name": "Ada", "phone": "+3312345678", "street": "1 Rue de la Paix", "city": "Paris",
    "postcode": "10115", "country": "DE",
}  # fmt: skip


def shop_body(**changes: Any) -> dict[str, Any]:
    return {
        "pickup": ADDRESS, "dropoff": ADDRESS,
        "parcels": [{"weight_g": 1200, "length_cm": 30, "width_cm": 20, "height_cm": 10}],
        "ready_at": rfc3339(START), **changes,
    }  # fmt: skip


@dataclass
class Api:
    client: TestClient[Any, Any]
    carriers: Carriers
    clock: SettableClock
    headers: dict[str, str]

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        extra = kwargs.pop("headers", {})
        response = await self.client.request(method, path, headers=self.headers | extra, **kwargs)
        body = await response.json() if response.status != 204 else None
        return response.status, body

    async def partner(self, provider: str, **body: Any) -> str:
        status, answer = await self.call(
            "POST", PARTNERS, json={"provider_code": provider, "name": provider, **body}
        )
        assert status == 201, answer
        return str(answer["partner_id"])


@pytest.fixture
async def api(
    database_url: str, clock: SettableClock, ring: KeyRing, session: aiohttp.ClientSession
) -> AsyncIterator[Api]:
    async with await CloudStore.open(database_url, now=clock) as store:
        service = CloudService(store, Signer("cloud", Ed25519PrivateKey.generate()), now=clock)
        key = await service.create_api_key("acme")
        carriers = Carriers.build(
            carrier_store(store), section(), ring=ring, session=session, now=clock
        )
        app = build_cloud_app(service, lambda _: None, ready=dict)
        add_carrier_routes(app, carriers, now=clock)
        async with TestClient(TestServer(app)) as client:
            yield Api(client, carriers, clock, {"Authorization": f"Bearer {key}"})


async def three_partners(api: Api, servers: list[CarrierServer]) -> dict[str, str]:
    """Tariff, a carrier failing with 503 and one slower than the quote time limit."""
    ids = {"tariff": await api.partner("tariff", settings={"table": TARIFF})}
    for name, server in zip(("good", "failing", "slow"), servers, strict=True):
        ids[name] = await api.partner(
            PROVIDER, credentials={"api_key": SECRET}, settings={"base_url": server.url}
        )
    servers[1].always = Answer(503)
    servers[2].always = Answer(200, delay_s=5.0)
    return ids


async def test_rate_shop_answers_in_one_timeout_and_reports_skips(
    api: Api, servers: list[CarrierServer]
) -> None:
    ids = await three_partners(api, servers)
    started = time.monotonic()
    status, answer = await api.call("POST", "/v1/acme/tasks/task-1/rate-shop", json=shop_body())
    elapsed = time.monotonic() - started
    assert status == 200, answer
    # One quote time limit (1.5 s), not the sum of the slow one (5 s) and the retries.
    assert 1.45 <= elapsed < 4.0
    offers = answer["offers"]
    assert {o["partner_id"] for o in offers} == {ids["tariff"], ids["good"]}
    assert [o["rank"] for o in offers] == [1, 2]
    assert offers[0]["score"] >= offers[1]["score"]
    # The tariff is cheapest (900 < 1250), the carrier faster (45 < 90 minutes).
    parts = {o["partner_id"]: o["score_parts"] for o in offers}
    assert parts[ids["tariff"]]["price"] == 1.0
    assert parts[ids["good"]]["eta"] == 1.0
    assert set(offers[0]["score_parts"]) == {"price", "eta", "reliability"}
    skipped = {s["partner_id"]: s["reason"] for s in answer["skipped"]}
    assert skipped == {ids["failing"]: "transient", ids["slow"]: "timeout"}
    assert len([s for s in servers[1].seen if s[1].endswith("delivery_quotes")]) == 2  # retried


async def test_open_breaker_is_skipped_without_a_call(
    api: Api, servers: list[CarrierServer]
) -> None:
    ids = await three_partners(api, servers)
    for _ in range(2):  # 2 shops x 2 attempts = 4 failures >= threshold 3
        await api.call("POST", "/v1/acme/tasks/task-1/rate-shop", json=shop_body())
    status, breaker = await api.call("GET", f"{PARTNERS}/{ids['failing']}/breaker")
    assert (status, breaker["state"], breaker["threshold"]) == (200, "open", 3)
    calls = len(servers[1].seen)
    _, answer = await api.call("POST", "/v1/acme/tasks/task-1/rate-shop", json=shop_body())
    found = next(s for s in answer["skipped"] if s["partner_id"] == ids["failing"])
    assert found["reason"] == "breaker_open"
    assert found["retry_at"] is not None
    assert len(servers[1].seen) == calls  # no request reached the failing carrier


async def test_credentials_never_leave_and_never_log(
    api: Api, servers: list[CarrierServer], caplog: pytest.LogCaptureFixture
) -> None:
    with structlog.testing.capture_logs() as logs:
        ids = await three_partners(api, servers)
        await api.call("POST", "/v1/acme/tasks/task-1/rate-shop", json=shop_body())
        status, listed = await api.call("GET", PARTNERS)
        _, one = await api.call("GET", f"{PARTNERS}/{ids['good']}")
        _, patched = await api.call(
            "PATCH", f"{PARTNERS}/{ids['good']}", json={"credentials": {"api_key": "sk_new_2"}}
        )
    assert status == 200
    for text in (str(listed), str(one), str(patched), str(logs), caplog.text):
        assert SECRET not in text
        assert "sk_new_2" not in text
    assert one["has_credentials"] is True
    assert "credentials" not in one
    # At rest: sealed, naming the key.
    async with api.carriers.registry.store.read() as conn:
        stored = (await conn.execute(sa.select(carrier_partners.c.credentials))).scalars().all()
    assert all(value is None or value.startswith("v1:k1:") for value in stored)
    assert not any(value and SECRET in value for value in stored)
    # The patched key is what the connector now sends.
    await api.call("POST", "/v1/acme/tasks/task-1/rate-shop", json=shop_body())
    assert servers[0].seen[-1][2]["Authorization"] == "Bearer sk_new_2"


async def test_partner_crud(api: Api, servers: list[CarrierServer]) -> None:
    partner = await api.partner(PROVIDER, credentials={"api_key": SECRET},
                                settings={"base_url": servers[0].url})  # fmt: skip
    moved = {"settings": {"base_url": servers[1].url}, "status": "disabled"}
    status, body = await api.call("PATCH", f"{PARTNERS}/{partner}", json=moved)
    assert body["settings"] == moved["settings"]
    assert (status, body["status"]) == (200, "disabled")
    assert (await api.call("PATCH", f"{PARTNERS}/{partner}", json={}))[0] == 400
    _, shop = await api.call("POST", "/v1/acme/tasks/t/rate-shop", json=shop_body())
    assert shop["offers"] == []
    assert shop["skipped"] == []
    assert (await api.call("DELETE", f"{PARTNERS}/{partner}"))[0] == 204
    assert (await api.call("GET", f"{PARTNERS}/{partner}"))[0] == 404
    assert (await api.call("GET", PARTNERS))[1] == {"partners": []}
    bad = {"provider_code": "nope", "name": "x"}
    status, body = await api.call("POST", PARTNERS, json=bad)
    assert (status, body["field"]) == (400, "provider_code")
    status, body = await api.call("POST", PARTNERS, json={"provider_code": "tariff", "name": "t"})
    assert (status, body["field"]) == (400, "settings")
    assert (await api.call("GET", f"{PARTNERS}/.."))[0] == 404


async def _shop_and_pick(api: Api, servers: list[CarrierServer]) -> dict[str, Any]:
    await api.partner(PROVIDER, credentials={"api_key": SECRET},
                      settings={"base_url": servers[0].url})  # fmt: skip
    _, answer = await api.call("POST", "/v1/acme/tasks/task-1/rate-shop", json=shop_body())
    return dict(answer["offers"][0])


async def test_accept_twice_with_one_key_books_one_job(
    api: Api, servers: list[CarrierServer]
) -> None:
    offer = await _shop_and_pick(api, servers)
    path = f"/v1/acme/offers/{offer['offer_id']}/accept"
    key = {"Idempotency-Key": "order-77-accept"}
    first, job = await api.call("POST", path, headers=key)
    again, same = await api.call("POST", path, headers=key)
    assert (first, again) == (201, 200)
    assert same["job_id"] == job["job_id"]
    assert job["status"] == "pending"
    assert job["tracking_number"] == "DEL_1"
    assert len(servers[0].deliveries) == 1
    other, conflict = await api.call("POST", path, headers={"Idempotency-Key": "other"})
    assert (other, conflict["error"]) == (409, "conflict")
    status, shown = await api.call("GET", f"/v1/acme/offers/{offer['offer_id']}")
    assert (status, shown["status"]) == (200, "accepted")
    bad = await api.call("POST", path, headers={"Idempotency-Key": "a b"})
    assert bad[0] == 400


async def test_offers_expire(api: Api, servers: list[CarrierServer]) -> None:
    offer = await _shop_and_pick(api, servers)
    api.clock.advance(16 * 60)  # the carrier's quote holds 15 minutes
    _, shown = await api.call("GET", f"/v1/acme/offers/{offer['offer_id']}")
    assert shown["status"] == "expired"
    status, body = await api.call("POST", f"/v1/acme/offers/{offer['offer_id']}/accept")
    assert (status, body["error"]) == (409, "conflict")
    assert "expired" in body["detail"]
    assert servers[0].deliveries == {}


async def test_refresh_to_delivered_captures_cost_once(
    api: Api, servers: list[CarrierServer]
) -> None:
    offer = await _shop_and_pick(api, servers)
    _, job = await api.call("POST", f"/v1/acme/offers/{offer['offer_id']}/accept")
    path = f"/v1/acme/carrier-jobs/{job['job_id']}"
    status, same = await api.call("POST", path + "/refresh")
    assert (status, same["status"], same["cost"]) == (200, "pending", None)
    delivery = servers[0].deliveries[next(iter(servers[0].deliveries))]
    delivery |= {
        "status": "delivered", "updated": rfc3339(START), "final_fee": 1390,
        "fee_parts": {"base": 1250, "waiting": 140},
        "verification": {"pincode": True, "picture": "https://p.example/1.jpg", "signer": "Ada"},
    }  # fmt: skip
    status, done = await api.call("POST", path + "/refresh")
    assert (status, done["status"]) == (200, "delivered")
    assert done["cost"]["amount_minor"] == 1390
    assert done["cost"]["components"] == {"base": 1250, "waiting": 140}
    assert done["proof"]["pincode_verified"] is True
    await api.call("POST", path + "/refresh")  # final: no second event
    async with api.carriers.registry.store.read() as conn:
        events = await list_events(conn, "acme")
        stats = await q.get_stats(conn, [offer["partner_id"]])
    assert [(e.job_id, e.amount_minor, e.currency) for e in events] == [
        (job["job_id"], 1390, "EUR")
    ]
    assert stats[offer["partner_id"]].delivered == 1
    assert stats[offer["partner_id"]].on_time == 1
    assert (await api.call("POST", path + "/cancel"))[0] == 409


async def test_cancel_and_carrier_errors(api: Api, servers: list[CarrierServer]) -> None:
    offer = await _shop_and_pick(api, servers)
    _, job = await api.call("POST", f"/v1/acme/offers/{offer['offer_id']}/accept")
    path = f"/v1/acme/carrier-jobs/{job['job_id']}"
    servers[0].queue.append(Answer(400, {"code": "invalid_params", "message": "too late"}))
    status, body = await api.call("POST", path + "/cancel")
    assert (status, body["error"]) == (422, "carrier_rejected")
    status, body = await api.call("POST", path + "/cancel")
    assert (status, body["status"]) == (200, "cancelled")
    assert (await api.call("POST", path + "/cancel"))[1]["status"] == "cancelled"
    assert (await api.call("GET", "/v1/acme/carrier-jobs/nope"))[0] == 404


async def test_booking_failure_reopens_the_offer(api: Api, servers: list[CarrierServer]) -> None:
    offer = await _shop_and_pick(api, servers)
    path = f"/v1/acme/offers/{offer['offer_id']}/accept"
    servers[0].queue += [Answer(502), Answer(502)]
    status, body = await api.call("POST", path)
    assert (status, body["error"], body["reason"]) == (502, "carrier_failed", "transient")
    _, shown = await api.call("GET", f"/v1/acme/offers/{offer['offer_id']}")
    assert shown["status"] == "open"
    status, job = await api.call("POST", path)
    assert status == 201
    # Every booking attempt carried the same carrier idempotency key.
    keys = {s[2]["Idempotency-Key"] for s in servers[0].seen if s[1].endswith("/deliveries")}
    assert len(keys) == 1
    async with api.carriers.registry.store.read() as conn:
        audit = await q.list_callbacks(conn, offer["partner_id"])
    assert [(a.operation, a.kind, a.status_code) for a in audit] == [
        ("create_job", "transient", 502), ("create_job", "transient", 502)
    ]  # fmt: skip
    assert job["tracking_url"].startswith("https://track.example/")


async def test_bad_bodies_and_ids(api: Api) -> None:
    path = "/v1/acme/tasks/task-1/rate-shop"
    status, body = await api.call("POST", path, json=shop_body(parcels=[]))
    assert (status, body["field"]) == (400, "parcels")
    early = shop_body(deliver_by=rfc3339(START))
    status, body = await api.call("POST", path, json=early)
    assert (status, body["field"], body["detail"]) == (
        400,
        "deliver_by",
        "Value error, must be after ready_at",
    )
    status, body = await api.call(
        "POST", path, json=shop_body(deliver_by=rfc3339(START.replace(hour=18)))
    )
    assert (status, body["offers"]) == (200, [])
    assert (await api.call("GET", "/v1/acme/carrier-jobs/a%20b"))[0] == 404
    assert (await api.call("GET", "/v1/acme/offers/a%20b"))[0] == 404


async def test_an_open_breaker_answers_503_with_retry_after(
    api: Api, servers: list[CarrierServer]
) -> None:
    offer = await _shop_and_pick(api, servers)
    breaker = api.carriers.registry.board.get(offer["partner_id"])
    for _ in range(3):
        breaker.failure()
    response = await api.client.post(
        f"/v1/acme/offers/{offer['offer_id']}/accept", headers=api.headers
    )
    assert response.status == 503
    assert (await response.json())["reason"] == "breaker_open"
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    _, shown = await api.call("GET", f"/v1/acme/offers/{offer['offer_id']}")
    assert shown["status"] == "open"  # the claim was undone
    breaker.success()
    status, job = await api.call("POST", f"/v1/acme/offers/{offer['offer_id']}/accept")
    assert status == 201
    status, same = await api.call("GET", f"/v1/acme/carrier-jobs/{job['job_id']}")
    assert (status, same) == (200, job)
