"""UPS as karrio's plugin calls it: OAuth token, Rating (Shop), Shipping, Void, Tracking.

Paths and JSON follow UPS's REST APIs (``/security/v1/oauth/token``,
``/api/rating/v2409/Shop``, ``/api/shipments/v2409/ship``, ``/void/cancel/{id}``,
``/api/track/v1/details/{number}``). Labels come back as UPS sends them for a PDF request: a
base64 GIF, which karrio turns into a PDF. Errors use UPS's ``{"response": {"errors": [...]}}``.
"""

from __future__ import annotations

import base64
import io
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from PIL import Image, ImageDraw

from .base import FakeServer

API = "/api"
# UPS tokens live four hours (expires_in 14399 s); karrio refreshes 30 minutes early.
TOKEN_LIFETIME_S = 14_399
# (service code, price in EUR, business days): UPS Standard and Express Saver within the EU.
SERVICES = (("11", "9.80", 2), ("65", "21.40", 1))
FUEL_CODE = "375"
FUEL_SHARE = 0.15


def ups_error(status: int, code: str, message: str) -> web.Response:
    """UPS's error body."""
    body = {"response": {"errors": [{"code": code, "message": message}]}}
    return web.json_response(body, status=status)


def _money(value: float) -> dict[str, str]:
    return {"CurrencyCode": "EUR", "MonetaryValue": f"{value:.2f}"}


def gif_label(tracking_number: str) -> str:
    """A base64 GIF label, landscape as UPS draws it."""
    image = Image.new("L", (600, 400), 255)
    ImageDraw.Draw(image).text((20, 20), f"UPS {tracking_number}", fill=0)
    out = io.BytesIO()
    image.save(out, format="GIF")
    return base64.b64encode(out.getvalue()).decode()


@dataclass
class Package:
    """A shipment the fake booked and what happened to it since."""

    number: str
    voided: bool = False
    activity: list[dict[str, Any]] = field(default_factory=list)
    received_by: str | None = None


class FakeUps(FakeServer):
    """The fake UPS APIs (``url`` is the karrio ``server_url``)."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        super().__init__()
        self.basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        self.tokens: set[str] = set()
        self.packages: dict[str, Package] = {}
        self.app.add_routes(
            [
                web.post("/security/v1/oauth/token", self._token),
                web.post(f"{API}/rating/v2409/Shop", self._rate),
                web.post(f"{API}/shipments/v2409/ship", self._ship),
                web.delete(f"{API}/shipments/v2409/void/cancel/{{number}}", self._void),
                web.get(f"{API}/track/v1/details/{{number}}", self._track),
            ]
        )

    async def _token(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Basic {self.basic}":
            return ups_error(401, "10401", "ClientId is Invalid")
        token = secrets.token_urlsafe(32)
        self.tokens.add(token)
        return web.json_response(
            {
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
                "client_id": "fake",
                "access_token": token,
                "expires_in": str(TOKEN_LIFETIME_S),
                "status": "approved",
            }
        )

    def _refused(self, request: web.Request) -> web.Response | None:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            return ups_error(401, "250002", "Invalid Authentication Information.")
        return None

    async def _rate(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = await request.json()
        ship_to = body["RateRequest"]["Shipment"]["ShipTo"]["Address"]
        if ship_to.get("PostalCode") == "00000":
            return ups_error(400, "111285", "The postal code 00000 is invalid for DE.")
        return web.json_response(
            {
                "RateResponse": {
                    "Response": {"ResponseStatus": {"Code": "1", "Description": "Success"}},
                    "RatedShipment": [_rated(code, price, days) for code, price, days in SERVICES],
                }
            }
        )

    async def _ship(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        body = await request.json()
        service = body["ShipmentRequest"]["Shipment"]["Service"]["Code"]
        price = next((float(p) for code, p, _ in SERVICES if code == service), None)
        if price is None:
            return ups_error(
                400,
                "111210",
                "The requested service is unavailable between the selected locations.",
            )
        number = "1Z" + secrets.token_hex(8).upper()
        self.packages[number] = Package(
            number, activity=[_activity("M", "MP", "Shipper created a label")]
        )
        total = _money(price * (1 + FUEL_SHARE))
        return web.json_response(
            {
                "ShipmentResponse": {
                    "Response": {"ResponseStatus": {"Code": "1", "Description": "Success"}},
                    "ShipmentResults": {
                        "ShipmentCharges": {"TransportationCharges": total, "TotalCharges": total},
                        "BillingWeight": {"UnitOfMeasurement": {"Code": "KGS"}, "Weight": "1.5"},
                        "ShipmentIdentificationNumber": number,
                        "PackageResults": [
                            {
                                "TrackingNumber": number,
                                "ShippingLabel": {
                                    "ImageFormat": {"Code": "GIF", "Description": "GIF"},
                                    "GraphicImage": gif_label(number),
                                },
                            }
                        ],
                    },
                }
            }
        )

    async def _void(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        package = self.packages.get(request.match_info["number"])
        if package is None:
            return ups_error(400, "190102", "No shipment found within the allowed void period.")
        if package.voided or package.received_by is not None:
            return ups_error(400, "190117", "The shipment cannot be voided.")
        package.voided = True
        package.activity.insert(0, _activity("M", "MV", "Shipper voided the label"))
        return web.json_response(
            {
                "VoidShipmentResponse": {
                    "Response": {"ResponseStatus": {"Code": "1", "Description": "Success"}},
                    "SummaryResult": {"Status": {"Code": "1", "Description": "Voided"}},
                }
            }
        )

    def deliver(self, number: str, received_by: str) -> None:
        """Scan the package delivered, signed for by ``received_by``."""
        package = self.packages[number]
        package.activity.insert(0, _activity("I", "OR", "Origin Scan"))
        package.activity.insert(0, _activity("D", "KB", "DELIVERED"))
        package.received_by = received_by

    async def _track(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        number = request.match_info["number"]
        package = self.packages.get(number)
        if package is None:
            warning = {"code": "TW0001", "message": "Tracking Information Not Found"}
            shipment: dict[str, Any] = {"inquiryNumber": number, "warnings": [warning]}
        else:
            shipment = {"inquiryNumber": number, "package": [_tracked(package)]}
        return web.json_response({"trackResponse": {"shipment": [shipment]}})


def _rated(code: str, price: str, days: int) -> dict[str, Any]:
    base = float(price)
    fuel = round(base * FUEL_SHARE, 2)
    arrival = datetime.now(UTC) + timedelta(days=days)
    return {
        "Service": {"Code": code, "Description": ""},
        "BillingWeight": {"UnitOfMeasurement": {"Code": "KGS"}, "Weight": "1.5"},
        "TransportationCharges": _money(base + fuel),
        "BaseServiceCharge": _money(base),
        "ItemizedCharges": [{"Code": FUEL_CODE, **_money(fuel)}],
        "ServiceOptionsCharges": _money(0),
        "TotalCharges": _money(base + fuel),
        "TimeInTransit": {
            "ServiceSummary": {
                "Service": {"Description": "UPS Standard"},
                "EstimatedArrival": {
                    "Arrival": {"Date": f"{arrival:%Y%m%d}", "Time": "230000"},
                    "BusinessDaysInTransit": str(days),
                },
            }
        },
    }


def _activity(kind: str, code: str, text: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "location": {"address": {"city": "BERLIN", "countryCode": "DE", "country": "DE"}},
        "status": {"type": kind, "description": text, "code": code},
        "date": f"{now:%Y%m%d}",
        "time": f"{now:%H%M%S}",
    }


def _tracked(package: Package) -> dict[str, Any]:
    tracked: dict[str, Any] = {
        "trackingNumber": package.number,
        "deliveryDate": [{"type": "DEL", "date": f"{datetime.now(UTC):%Y%m%d}"}],
        "activity": package.activity,
        "service": {"code": "011", "description": "UPS Standard"},
        "weight": {"unitOfMeasurement": "KGS", "weight": "1.50"},
    }
    if package.received_by is not None:
        tracked["deliveryInformation"] = {
            "receivedBy": package.received_by,
            "location": "Front Door",
            "signature": {"image": gif_label("signature")},
        }
    return tracked
