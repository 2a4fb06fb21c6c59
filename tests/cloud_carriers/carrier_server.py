"""A carrier API on 127.0.0.1 for tests, shaped like Uber Direct's documented one, and the
connector that talks to it (``test_http``), registered as a provider for these tests.

Quote: POST /v1/customers/{customer_id}/delivery_quotes -> {"kind": "delivery_quote", "id",
"fee", "currency_type", "dropoff_eta", "expires", "duration"}. Booking: POST .../deliveries
with the quote id and an Idempotency-Key header -> {"kind": "delivery", "id", "status",
"tracking_url", "fee"}. Status: GET .../deliveries/{id}. Cancel: POST .../deliveries/{id}/cancel.
Errors: {"code": ..., "message": ...} with the HTTP status, as Uber Direct answers them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from cloud_sync.carriers.connector import (
    CarrierJob,
    CarrierJobRef,
    Connector,
    Cost,
    JobRequest,
    JobStatus,
    Label,
    Manifest,
    Proof,
    Quote,
    QuoteRequest,
)
from cloud_sync.carriers.errors import CarrierError, TransientCarrierError, for_status
from cloud_sync.carriers.registry import PartnerConfig, ProviderContext, register_provider
from cloud_sync.protocol.fields import parse_rfc3339, rfc3339

PROVIDER = "test_http"
CUSTOMER = "cust_7f3e"


@dataclass
class Answer:
    """What the server answers next: status, body, headers, delay."""

    status: int = 200
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class CarrierServer:
    """One fake carrier: its fee, queued answers, and what it saw."""

    now: Callable[[], datetime]
    fee: int = 1250
    currency: str = "EUR"
    minutes: int = 45
    queue: list[Answer] = field(default_factory=list)
    always: Answer | None = None
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        base = f"/v1/customers/{CUSTOMER}"
        app.router.add_post(base + "/delivery_quotes", self.quote)
        app.router.add_post(base + "/deliveries", self.create)
        app.router.add_get(base + "/deliveries/{id}", self.status)
        app.router.add_post(base + "/deliveries/{id}/cancel", self.cancel)
        return app

    async def _canned(self, request: web.Request) -> web.Response | None:
        self.seen.append((request.method, request.path, dict(request.headers)))
        answer = self.queue.pop(0) if self.queue else self.always
        if answer is None:
            return None
        if answer.delay_s:
            # Waits for the test's end rather than a fixed sleep, so teardown is prompt.
            with _suppress_timeout():
                await asyncio.wait_for(self.release.wait(), answer.delay_s)
        if answer.status == 200 and answer.body is None:
            return None
        body = answer.body or {"code": "error", "message": f"status {answer.status}"}
        return web.json_response(body, status=answer.status, headers=answer.headers)

    async def quote(self, request: web.Request) -> web.Response:
        canned = await self._canned(request)
        if canned is not None:
            return canned
        now = self.now()
        return web.json_response({
            "kind": "delivery_quote", "id": f"dqt_{len(self.seen)}", "created": rfc3339(now),
            "expires": rfc3339(now + timedelta(minutes=15)), "fee": self.fee,
            "currency": self.currency.lower(), "currency_type": self.currency,
            "dropoff_eta": rfc3339(now + timedelta(minutes=self.minutes)),
            "duration": self.minutes, "pickup_duration": 10,
        })  # fmt: skip

    async def create(self, request: web.Request) -> web.Response:
        canned = await self._canned(request)
        if canned is not None:
            return canned
        body = await request.json()
        key = request.headers["Idempotency-Key"]
        delivery = self.deliveries.get(key) or {
            "kind": "delivery", "id": f"del_{len(self.deliveries) + 1}", "status": "pending",
            "quote_id": body["quote_id"], "fee": self.fee, "currency": self.currency.lower(),
            "tracking_url": f"https://track.example/del_{len(self.deliveries) + 1}",
            "updated": rfc3339(self.now()),
        }  # fmt: skip
        self.deliveries[key] = delivery
        return web.json_response(delivery)

    def _delivery(self, delivery_id: str) -> dict[str, Any]:
        return next(d for d in self.deliveries.values() if d["id"] == delivery_id)

    async def status(self, request: web.Request) -> web.Response:
        canned = await self._canned(request)
        return canned or web.json_response(self._delivery(request.match_info["id"]))

    async def cancel(self, request: web.Request) -> web.Response:
        canned = await self._canned(request)
        if canned is not None:
            return canned
        found = self._delivery(request.match_info["id"])
        found["status"] = "canceled"
        return web.json_response(found)


class _suppress_timeout:  # noqa: N801 - used like contextlib.suppress
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, *_: object) -> bool:
        return kind is TimeoutError


_STATUS = {"pending": "pending", "pickup": "pending", "pickup_complete": "picked_up",
           "dropoff": "picked_up", "delivered": "delivered", "canceled": "cancelled",
           "returned": "failed"}  # fmt: skip


class HttpTestConnector:
    """The connector for ``CarrierServer``: translates its answers into the contract."""

    provider_code = PROVIDER

    def __init__(self, session: aiohttp.ClientSession, base_url: str, api_key: str) -> None:
        self.session = session
        self.base = f"{base_url}/v1/customers/{CUSTOMER}"
        self.headers = {"Authorization": f"Bearer {api_key}"}

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None
    ) -> dict[str, Any]:
        headers = dict(self.headers) | ({"Idempotency-Key": key} if key else {})
        try:
            async with self.session.request(
                method, self.base + path, json=body, headers=headers
            ) as response:
                data = await response.read()
                failure = for_status(
                    response.status, response.headers, provider_code=PROVIDER,
                    detail=data.decode(errors="replace"),
                )  # fmt: skip
        except aiohttp.ClientError as exc:
            raise TransientCarrierError(str(exc), provider_code=PROVIDER) from None
        if failure is not None:
            raise failure
        parsed = json.loads(data)
        if not isinstance(parsed, dict):
            raise CarrierError("not an object", provider_code=PROVIDER)
        return parsed

    async def quote(self, request: QuoteRequest) -> list[Quote]:
        body = {"pickup_address": request.pickup.street, "dropoff_address": request.dropoff.street}
        data = await self._call("POST", "/delivery_quotes", body)
        return [
            Quote(PROVIDER, "courier", data["fee"], data["currency_type"],
                  parse_rfc3339(data["dropoff_eta"]), parse_rfc3339(data["expires"]),
                  data["id"], {"duration": data["duration"]})
        ]  # fmt: skip

    async def create_job(self, request: JobRequest, *, idempotency_key: str) -> CarrierJob:
        body = {"quote_id": request.quote.carrier_quote_id, "manifest_reference": request.task_id}
        data = await self._call("POST", "/deliveries", body, key=idempotency_key)
        return CarrierJob(
            PROVIDER, data["id"], data["id"].upper(), "pending", data["tracking_url"], None
        )

    async def get_status(self, job: CarrierJobRef) -> JobStatus:
        data = await self._call("GET", f"/deliveries/{job.carrier_job_id}")
        status = _STATUS[data["status"]]
        cost = None
        if "final_fee" in data:
            cost = Cost(data["final_fee"], data["currency"].upper(), data.get("fee_parts", {}))
        proof = None
        if "verification" in data:
            found = data["verification"]
            proof = Proof(found.get("pincode"), found.get("picture"), None, found.get("signer"))
        at = parse_rfc3339(data["updated"])
        return JobStatus(status, at, cost, proof)  # type: ignore[arg-type]

    async def cancel_job(self, job: CarrierJobRef) -> None:
        await self._call("POST", f"/deliveries/{job.carrier_job_id}/cancel")

    async def get_label(self, job: CarrierJobRef) -> Label | None:
        return None

    async def get_manifest(self, day: date) -> Manifest | None:
        return None


def factory(config: PartnerConfig, context: ProviderContext) -> Connector:
    """``test_http``: settings.base_url; credentials.api_key."""
    if context.session is None:
        raise CarrierError("test_http needs an HTTP session")
    return HttpTestConnector(
        context.session, str(config.settings["base_url"]), config.credentials["api_key"]
    )


register_provider(PROVIDER, factory)
