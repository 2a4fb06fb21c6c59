"""Uber Direct's JSON, both ways: pure functions, no I/O.

Requests follow Uber Direct's DaaS API (``POST /v1/customers/{id}/delivery_quotes`` and
``/deliveries``); answers are read into our ``Quote``, ``CarrierJob`` and ``JobStatus``.
Every reader returns a valid value or raises ``UnreadableAnswerError``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .connector import (
    Address,
    CarrierJob,
    Cost,
    JobRequest,
    JobStatus,
    JobStatusName,
    Parcel,
    Proof,
    Quote,
    QuoteRequest,
)
from .errors import CarrierError

PROVIDER_CODE = "uber_direct"
SERVICE = "uber_direct"
# Uber wants the dropoff window to close at least this long after pickup opens; without a
# deadline from the caller we ask for a same-day window.
DEFAULT_DROPOFF_WINDOW = timedelta(hours=4)

# Uber's delivery statuses (delivery object and event.delivery_status) onto ours. "pickup" means
# a courier is on the way to the pickup: the parcel has not moved yet. "returned" is a delivery
# that could not be completed and went back: failed for the recipient.
STATUS_MAP: Mapping[str, JobStatusName] = {
    "pending": "pending",
    "pickup": "pending",
    "pickup_complete": "picked_up",
    "dropoff": "picked_up",
    "delivered": "delivered",
    "canceled": "cancelled",
    "returned": "failed",
}


class UnreadableAnswerError(CarrierError):
    """Uber answered 2xx with a body we cannot read: a contract change, not a retry case."""

    @property
    def kind(self) -> str:
        return "unreadable"


@dataclass(frozen=True, slots=True)
class DropoffVerification:
    """What the courier must collect at the dropoff (Uber's ``dropoff_verification``)."""

    pincode: bool = False
    signature: bool = False
    collect_signer_name: bool = True
    picture: bool = False

    def as_json(self) -> dict[str, Any] | None:
        """The request object, or None when nothing is required."""
        body: dict[str, Any] = {}
        if self.pincode:
            body["pincode"] = {"enabled": True}
        if self.signature:
            body["signature_requirement"] = {
                "enabled": True,
                "collect_signer_name": self.collect_signer_name,
                "collect_signer_relationship": False,
            }
        if self.picture:
            body["picture"] = True
        return body or None


def _structured(address: Address) -> str:
    # Uber takes a structured address as a JSON string inside the JSON body.
    return json.dumps(
        {
            "street_address": [address.street],
            "city": address.city,
            "zip_code": address.postcode,
            "country": address.country,
        },
        separators=(",", ":"),
    )


def _place(prefix: str, address: Address) -> dict[str, Any]:
    body: dict[str, Any] = {
        f"{prefix}_address": _structured(address),
        f"{prefix}_phone_number": address.phone,
    }
    if address.lat is not None and address.lng is not None:
        body[f"{prefix}_latitude"] = address.lat
        body[f"{prefix}_longitude"] = address.lng
    return body


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def quote_body(request: QuoteRequest) -> dict[str, Any]:
    """The ``delivery_quotes`` request for ``request``."""
    deadline = request.deliver_by or request.ready_at + DEFAULT_DROPOFF_WINDOW
    return {
        **_place("pickup", request.pickup),
        **_place("dropoff", request.dropoff),
        "pickup_ready_dt": _rfc3339(request.ready_at),
        "dropoff_deadline_dt": _rfc3339(deadline),
        "external_store_id": request.tenant,
    }


def _manifest_item(parcel: Parcel) -> dict[str, Any]:
    return {
        "name": parcel.description or "parcel",
        "quantity": 1,
        "weight": parcel.weight_g,
        "dimensions": {
            "length": parcel.length_cm,
            "height": parcel.height_cm,
            "depth": parcel.width_cm,
        },
    }


def delivery_body(
    request: JobRequest, *, idempotency_key: str, verification: DropoffVerification
) -> dict[str, Any]:
    """The ``deliveries`` request booking ``request.quote``."""
    body: dict[str, Any] = {
        "quote_id": request.quote.carrier_quote_id,
        "pickup_name": request.pickup.name,
        "dropoff_name": request.dropoff.name,
        **_place("pickup", request.pickup),
        **_place("dropoff", request.dropoff),
        "manifest_items": [_manifest_item(parcel) for parcel in request.parcels],
        "external_id": request.task_id,
        "idempotency_key": idempotency_key,
    }
    dropoff = verification.as_json()
    if dropoff is not None:
        body["dropoff_verification"] = dropoff
    return body


def _field(data: Mapping[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool):
        raise UnreadableAnswerError(f"uber_direct answer lacks {name}", provider_code=PROVIDER_CODE)
    return value


def _time(data: Mapping[str, Any], name: str) -> datetime:
    text = _field(data, name, str)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UnreadableAnswerError(
            f"uber_direct answer has a bad {name}", provider_code=PROVIDER_CODE
        ) from exc
    if moment.tzinfo is None:
        raise UnreadableAnswerError(f"uber_direct {name} has no zone", provider_code=PROVIDER_CODE)
    return moment


def _currency(data: Mapping[str, Any]) -> str:
    # Uber writes "currency" in lower case ("usd") and sometimes "currency_type" ("USD").
    code = data.get("currency_type") or _field(data, "currency", str)
    if not isinstance(code, str) or len(code) != 3 or not code.isalpha():
        raise UnreadableAnswerError("uber_direct currency unreadable", provider_code=PROVIDER_CODE)
    return code.upper()


def read_quote(data: Mapping[str, Any]) -> Quote:
    """Our Quote from a ``delivery_quote`` object."""
    return Quote(
        provider_code=PROVIDER_CODE,
        service=SERVICE,
        amount_minor=_field(data, "fee", int),
        currency=_currency(data),
        eta=_time(data, "dropoff_eta"),
        expires_at=_time(data, "expires"),
        carrier_quote_id=_field(data, "id", str),
        raw=dict(data),
    )


def read_status_name(value: object) -> JobStatusName:
    """Our status for an Uber delivery status."""
    if not isinstance(value, str) or value not in STATUS_MAP:
        raise UnreadableAnswerError(
            f"uber_direct status {value!r} is unknown", provider_code=PROVIDER_CODE
        )
    return STATUS_MAP[value]


def read_job(data: Mapping[str, Any]) -> CarrierJob:
    """Our CarrierJob from a ``delivery`` object."""
    delivery_id = _field(data, "id", str)
    tracking_url = data.get("tracking_url")
    return CarrierJob(
        provider_code=PROVIDER_CODE,
        carrier_job_id=delivery_id,
        # Uber has no separate tracking number: the delivery id is what support asks for.
        tracking_number=delivery_id,
        status=read_status_name(data.get("status")),
        tracking_url=tracking_url if isinstance(tracking_url, str) else None,
    )


def read_cost(data: Mapping[str, Any]) -> Cost:
    """The fee plus the tip, split into components."""
    fee = _field(data, "fee", int)
    tip = data.get("tip") or 0
    if not isinstance(tip, int) or isinstance(tip, bool):
        raise UnreadableAnswerError("uber_direct tip unreadable", provider_code=PROVIDER_CODE)
    components = {"delivery_fee": fee}
    if tip:
        components["tip"] = tip
    return Cost(amount_minor=fee + tip, currency=_currency(data), components=components)


def _mapping(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    return value if isinstance(value, Mapping) else {}


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return value if isinstance(value, str) and value else None


def read_proof(data: Mapping[str, Any]) -> Proof | None:
    """The dropoff's proof (pincode, picture, signature and signer), None when there is none."""
    found = _mapping(_mapping(data, "dropoff"), "verification")
    required = _mapping(_mapping(data, "verification_requirements"), "pincode")
    pincode: bool | None = None
    if required.get("enabled") is True:
        entered = _text(_mapping(found, "pin_code"), "entered")
        expected = _text(required, "value")
        pincode = entered is not None and (expected is None or entered == expected)
    signature = _mapping(found, "signature")
    proof = Proof(
        pincode_verified=pincode,
        picture_url=_text(_mapping(found, "picture"), "image_url"),
        signature_url=_text(signature, "image_url"),
        signer_name=_text(signature, "signer_name"),
    )
    return None if proof == Proof() else proof


def read_status(data: Mapping[str, Any]) -> JobStatus:
    """Our JobStatus from a ``delivery`` object (GET delivery, or a webhook's ``data``)."""
    status = read_status_name(data.get("status"))
    at = _time(data, "updated") if "updated" in data else _time(data, "created")
    return JobStatus(status=status, at=at, cost=read_cost(data), proof=read_proof(data))


def read_error(body: bytes) -> str:
    """Uber's ``code: message`` from an error body, for our error's message."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    if not isinstance(data, dict):
        return ""
    return f"{data.get('code', '')}: {data.get('message', '')}".strip(": ")
