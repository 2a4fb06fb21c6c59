"""Uber Direct as a real server: OAuth token, quotes, deliveries, cancel, signed webhooks.

Shapes follow Uber Direct's DaaS API: ``dqt_`` quotes valid 15 minutes, ``del_`` deliveries
whose ``status`` runs pending, pickup, pickup_complete, dropoff, delivered (or canceled,
returned), fees in cents with a lower-case currency, errors as ``{"code", "message"}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from .base import FakeServer

QUOTE_LIFETIME = timedelta(minutes=15)
DELIVERY_TIME = timedelta(minutes=45)
# Uber's tokens live 30 days; tests shorten this to see a refresh.
TOKEN_LIFETIME_S = 2_592_000
CANCELLABLE = frozenset({"pending", "pickup"})


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message, "metadata": {}}, status=status)


@dataclass
class Account:
    """The one customer the fake serves."""

    customer_id: str
    client_id: str
    client_secret: str
    fee: int = 799
    currency: str = "eur"
    webhook_key: bytes = b""
    webhook_urls: list[str] = field(default_factory=list)


class FakeUberDirect(FakeServer):
    """The fake Uber Direct API (``url`` is both the auth and the API base)."""

    def __init__(self, account: Account, *, token_lifetime_s: int = TOKEN_LIFETIME_S) -> None:
        super().__init__()
        self.account = account
        self.token_lifetime_s = token_lifetime_s
        self.tokens: dict[str, datetime] = {}
        self.quotes: dict[str, dict[str, Any]] = {}
        self.deliveries: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, str] = {}
        self.now: Callable[[], datetime] = _utcnow
        base = f"/v1/customers/{account.customer_id}"
        self.app.add_routes(
            [
                web.post("/oauth/v2/token", self._token),
                web.post(f"{base}/delivery_quotes", self._quote),
                web.post(f"{base}/deliveries", self._create),
                web.get(f"{base}/deliveries/{{id}}", self._get),
                web.post(f"{base}/deliveries/{{id}}/cancel", self._cancel),
            ]
        )

    def expire_tokens(self) -> None:
        """Every issued token stops working, as when it outlives ``expires_in``."""
        self.tokens.clear()

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != self.account.client_id
            or form.get("client_secret") != self.account.client_secret
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        token = "IA." + secrets.token_urlsafe(24)
        self.tokens[token] = self.now() + timedelta(seconds=self.token_lifetime_s)
        return web.json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime_s,
                "scope": form.get("scope", ""),
            }
        )

    def _authorized(self, request: web.Request) -> bool:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        expiry = self.tokens.get(token)
        return expiry is not None and expiry > self.now()

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        if not self._authorized(request):
            return _error(401, "unauthorized", "The supplied bearer token is invalid.")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid_params", "The request body is not JSON.")
        return body if isinstance(body, dict) else _error(400, "invalid_params", "not an object")

    async def _quote(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        for name in ("pickup_address", "dropoff_address"):
            if not isinstance(body.get(name), str):
                return _error(400, "invalid_params", f"{name} is required")
        if json.loads(body["dropoff_address"]).get("zip_code") == "00000":
            return _error(
                400, "address_undeliverable", "The specified location is not in a deliverable area."
            )
        now = self.now()
        quote: dict[str, Any] = {
            "kind": "delivery_quote",
            "id": "dqt_" + secrets.token_hex(11),
            "created": _rfc3339(now),
            "expires": _rfc3339(now + QUOTE_LIFETIME),
            "fee": self.account.fee,
            "currency": self.account.currency,
            "currency_type": self.account.currency.upper(),
            "dropoff_eta": _rfc3339(now + DELIVERY_TIME),
            "duration": int(DELIVERY_TIME.total_seconds() // 60),
            "pickup_duration": 10,
            "dropoff_deadline": body.get("dropoff_deadline_dt"),
        }
        self.quotes[quote["id"]] = quote
        return web.json_response(quote)

    async def _create(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        key = body.get("idempotency_key")
        if isinstance(key, str) and key in self.by_key:
            return web.json_response(self.deliveries[self.by_key[key]])
        quote = self.quotes.get(str(body.get("quote_id")))
        if quote is None or datetime.fromisoformat(quote["expires"]) < self.now():
            return _error(400, "invalid_params", "The quote_id is invalid or expired.")
        delivery = self._new_delivery(body, quote)
        self.deliveries[delivery["id"]] = delivery
        if isinstance(key, str):
            self.by_key[key] = delivery["id"]
        return web.json_response(delivery)

    def _new_delivery(self, body: dict[str, Any], quote: dict[str, Any]) -> dict[str, Any]:
        now = _rfc3339(self.now())
        delivery_id = "del_" + secrets.token_urlsafe(16)
        delivery: dict[str, Any] = {
            "kind": "delivery",
            "id": delivery_id,
            "quote_id": quote["id"],
            "status": "pending",
            "complete": False,
            "created": now,
            "updated": now,
            "fee": quote["fee"],
            "currency": quote["currency"],
            "tip": 0,
            "external_id": body.get("external_id"),
            "tracking_url": f"https://www.ubereats.com/orders/{delivery_id}",
            "dropoff_eta": quote["dropoff_eta"],
            "pickup": {"name": body.get("pickup_name"), "address": body.get("pickup_address")},
            "dropoff": {"name": body.get("dropoff_name"), "address": body.get("dropoff_address")},
            "manifest_items": body.get("manifest_items", []),
            "live_mode": False,
            "undeliverable_action": "",
        }
        verification = body.get("dropoff_verification") or {}
        if verification.get("pincode", {}).get("enabled"):
            pin = f"{secrets.randbelow(10_000):04d}"
            delivery["verification_requirements"] = {"pincode": {"enabled": True, "value": pin}}
        return delivery

    async def _get(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "unauthorized", "The supplied bearer token is invalid.")
        delivery = self.deliveries.get(request.match_info["id"])
        if delivery is None:
            return _error(404, "delivery_not_found", "The requested delivery does not exist.")
        return web.json_response(delivery)

    async def _cancel(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "unauthorized", "The supplied bearer token is invalid.")
        delivery = self.deliveries.get(request.match_info["id"])
        if delivery is None:
            return _error(404, "delivery_not_found", "The requested delivery does not exist.")
        if delivery["status"] not in CANCELLABLE:
            return _error(400, "noncancelable_delivery", "Delivery cannot be cancelled.")
        self._set(delivery, "canceled")
        return web.json_response(delivery)

    def _set(self, delivery: dict[str, Any], status: str) -> None:
        delivery["status"] = status
        delivery["complete"] = status in {"delivered", "canceled", "returned"}
        delivery["updated"] = _rfc3339(self.now())

    def complete(
        self,
        delivery_id: str,
        *,
        signer_name: str | None = None,
        picture: bool = False,
        pin: str | None = None,
        tip: int = 0,
    ) -> dict[str, Any]:
        """Drive a delivery to ``delivered`` with the proof a courier collects."""
        delivery = self.deliveries[delivery_id]
        verification: dict[str, Any] = {}
        if signer_name is not None:
            verification["signature"] = {
                "image_url": f"https://pod.uber.invalid/{delivery_id}/signature.png",
                "signer_name": signer_name,
                "signer_relationship": "",
            }
        if picture:
            verification["picture"] = {
                "image_url": f"https://pod.uber.invalid/{delivery_id}/photo.jpg"
            }
        if pin is not None:
            verification["pin_code"] = {"entered": pin}
        delivery["dropoff"]["verification"] = verification
        delivery["tip"] = tip
        self._set(delivery, "delivered")
        return delivery

    def advance(self, delivery_id: str, status: str) -> dict[str, Any]:
        """Move a delivery to ``status`` (pickup, pickup_complete, dropoff, returned...)."""
        delivery = self.deliveries[delivery_id]
        self._set(delivery, status)
        return delivery

    def event(self, delivery_id: str, kind: str = "event.delivery_status") -> bytes:
        """The raw body of a webhook about ``delivery_id`` as it stands."""
        delivery = self.deliveries[delivery_id]
        event: dict[str, Any] = {
            "id": "evt_" + secrets.token_hex(8),
            "kind": kind,
            "created": _rfc3339(self.now()),
            "delivery_id": delivery_id,
            "status": delivery["status"],
            "data": delivery,
            "customer_id": self.account.customer_id,
            "live_mode": False,
        }
        if kind == "event.courier_update":
            event["location"] = {"lat": 52.5206, "lng": 13.4094}
        return json.dumps(event).encode()

    def sign(self, body: bytes) -> str:
        """``x-uber-signature`` for ``body``."""
        return hmac.new(self.account.webhook_key, body, hashlib.sha256).hexdigest()

    async def send_webhook(
        self, delivery_id: str, kind: str = "event.delivery_status"
    ) -> list[int]:
        """POST a signed event to every registered URL; their HTTP statuses."""
        body = self.event(delivery_id, kind)
        headers = {"Content-Type": "application/json", "x-uber-signature": self.sign(body)}
        statuses = []
        async with aiohttp.ClientSession() as session:
            for url in self.account.webhook_urls:
                async with session.post(url, data=body, headers=headers) as response:
                    statuses.append(response.status)
        return statuses
