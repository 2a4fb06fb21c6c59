"""Our values to karrio's models and back, and karrio's failures to our errors: no I/O.

karrio speaks decimal major units, kilograms and free-form service names; we speak integer
minor units, grams and ``karrio:<carrier>`` provider codes.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

with warnings.catch_warnings():
    # karrio 2026.1 imports PyPDF2, which warns that it is deprecated: karrio's to fix.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="PyPDF2")
    import karrio.core.models as km  # type: ignore[import-untyped]

from .connector import (
    Address,
    CarrierJob,
    Cost,
    JobRequest,
    JobStatus,
    JobStatusName,
    Label,
    Parcel,
    Proof,
    Quote,
    QuoteRequest,
)
from .errors import CarrierAuthError, CarrierError, CarrierRejectedError, for_status

PREFIX = "karrio:"
# karrio's rates carry no expiry; carriers honour a rated price for the day, we keep it for
# the same quarter hour as other quotes so a stale price is never booked.
QUOTE_LIFETIME = timedelta(minutes=15)
# ISO 4217 exponents that are not 2 (the rest of the world uses cents).
MINOR_DIGITS: Mapping[str, int] = {"JPY": 0, "KRW": 0, "HUF": 2, "BHD": 3, "KWD": 3, "TND": 3}
# Message codes that mean the account's credentials are wrong, per carrier.
AUTH_CODES: Mapping[str, frozenset[str]] = {
    "ups": frozenset({"250002", "250003", "10401"}),
    "dhl_express": frozenset({"100"}),
}
# karrio's tracker statuses onto ours; anything else is moving through the network.
TRACKER_STATUS: Mapping[str, JobStatusName] = {
    "pending": "pending",
    "unknown": "pending",
    "delivered": "delivered",
    "cancelled": "cancelled",
    "delivery_failed": "failed",
    "return_to_sender": "failed",
}
LABEL_FORMATS: Mapping[str, str] = {"PDF": "pdf", "ZPL": "zpl", "PNG": "png"}


class UnreadableAnswerError(CarrierError):
    """karrio could not read the carrier's answer, or read it into nothing we can use."""

    @property
    def kind(self) -> str:
        return "unreadable"


@dataclass(frozen=True, slots=True)
class Booked:
    """A created shipment: the job, and the label the carrier returned with it."""

    job: CarrierJob
    label: Label | None
    cost: Cost | None


def provider_code(carrier_name: str) -> str:
    """``karrio:<carrier_name>``."""
    return f"{PREFIX}{carrier_name}"


def to_minor(amount: Any, currency: str) -> int:
    """Major units (float, Decimal or text) to integer minor units, half up."""
    scale = Decimal(10) ** MINOR_DIGITS.get(currency.upper(), 2)
    try:
        # Too large for the context's precision raises InvalidOperation too: not a price.
        return int((Decimal(str(amount)) * scale).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError, OverflowError) as exc:
        raise UnreadableAnswerError(f"amount {str(amount)[:40]!r} is not a price") from exc


def to_address(address: Address) -> km.Address:
    """karrio's Address."""
    return km.Address(
        person_name=address.name,
        company_name=address.name,
        phone_number=address.phone,
        address_line1=address.street,
        city=address.city,
        postal_code=address.postcode,
        country_code=address.country,
    )


def to_parcels(parcels: Sequence[Parcel]) -> list[km.Parcel]:
    """karrio's Parcels, in KG and CM."""
    return [
        km.Parcel(
            weight=parcel.weight_g / 1000,
            weight_unit="KG",
            length=parcel.length_cm,
            width=parcel.width_cm,
            height=parcel.height_cm,
            dimension_unit="CM",
            description=parcel.description or None,
        )
        for parcel in parcels
    ]


def rate_request(request: QuoteRequest) -> km.RateRequest:
    """karrio's RateRequest for ``request`` (every service)."""
    return km.RateRequest(
        shipper=to_address(request.pickup),
        recipient=to_address(request.dropoff),
        parcels=to_parcels(request.parcels),
        services=[],
        options={},
        reference=request.task_id,
    )


def shipment_request(request: JobRequest, label_type: str) -> km.ShipmentRequest:
    """karrio's ShipmentRequest booking the quoted service."""
    return km.ShipmentRequest(
        shipper=to_address(request.pickup),
        recipient=to_address(request.dropoff),
        parcels=to_parcels(request.parcels),
        service=request.quote.service,
        label_type=label_type,
        reference=request.task_id,
        options={},
    )


def _components(charges: Iterable[km.ChargeDetails], currency: str) -> dict[str, int]:
    components: dict[str, int] = {}
    for charge in charges:
        if charge.amount is None:
            continue
        name = str(charge.name or "charge").strip().lower().replace(" ", "_")
        components[name] = components.get(name, 0) + to_minor(charge.amount, currency)
    return components


def read_rate(code: str, rate: km.RateDetails, ready_at: datetime, now: datetime) -> Quote:
    """Our Quote from a karrio rate; the ETA counts transit days from ``ready_at``."""
    currency = str(rate.currency or "").upper()
    if len(currency) != 3:
        raise UnreadableAnswerError(f"{code} rate without a currency", provider_code=code)
    days = rate.transit_days if isinstance(rate.transit_days, int) else 1
    return Quote(
        provider_code=code,
        service=str(rate.service),
        amount_minor=to_minor(rate.total_charge, currency),
        currency=currency,
        eta=ready_at + timedelta(days=days),
        expires_at=now + QUOTE_LIFETIME,
        raw={"components": _components(rate.extra_charges or [], currency), "meta": rate.meta},
    )


def read_cost(rate: km.RateDetails | None) -> Cost | None:
    """The charged cost of a booked shipment, when the carrier said it."""
    if rate is None or rate.total_charge is None or not rate.currency:
        return None
    currency = str(rate.currency).upper()
    return Cost(
        amount_minor=to_minor(rate.total_charge, currency),
        currency=currency,
        components=_components(rate.extra_charges or [], currency),
    )


def read_label(details: km.ShipmentDetails) -> Label | None:
    """The label karrio returned (base64), as bytes."""
    data = getattr(details.docs, "label", None) if details.docs is not None else None
    if not data:
        return None
    try:
        raw = base64.b64decode(data)
    except (binascii.Error, ValueError) as exc:
        raise UnreadableAnswerError("label is not base64") from exc
    kind = LABEL_FORMATS.get(str(details.label_type or "PDF").upper(), "pdf")
    return Label(format=kind, data=raw)


def read_shipment(code: str, details: km.ShipmentDetails) -> Booked:
    """Our booking from karrio's ShipmentDetails."""
    if not details.shipment_identifier or not details.tracking_number:
        raise UnreadableAnswerError(f"{code} shipment without a number", provider_code=code)
    link = (details.meta or {}).get("carrier_tracking_link")
    job = CarrierJob(
        provider_code=code,
        carrier_job_id=str(details.shipment_identifier),
        tracking_number=str(details.tracking_number),
        status="pending",
        tracking_url=link if isinstance(link, str) else None,
    )
    return Booked(job=job, label=read_label(details), cost=read_cost(details.selected_rate))


def _event_time(details: km.TrackingDetails, now: datetime) -> datetime:
    for event in details.events or []:
        stamp = getattr(event, "timestamp", None)
        if isinstance(stamp, str):
            try:
                moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return now


def read_tracking(details: km.TrackingDetails, now: datetime) -> JobStatus:
    """Our JobStatus from karrio's TrackingDetails (latest event first, as karrio lists them)."""
    name = str(details.status or "unknown")
    status: JobStatusName = (
        "delivered" if details.delivered else TRACKER_STATUS.get(name, "picked_up")
    )
    signer = getattr(details.info, "signed_by", None) if details.info is not None else None
    proof = Proof(signer_name=signer) if status == "delivered" and signer else None
    return JobStatus(status=status, at=_event_time(details, now), proof=proof)


def _text(messages: Sequence[km.Message]) -> str:
    return "; ".join(f"{m.code}: {m.message}" for m in messages)[:400]


def error_for(
    code: str,
    carrier_name: str,
    messages: Sequence[km.Message],
    status: int | None,
    headers: Mapping[str, str],
) -> CarrierError:
    """Our error for a karrio call that produced no result."""
    detail = _text(messages) or "no result"
    if status is not None:
        error = for_status(status, headers, provider_code=code, detail=detail)
        if error is not None:
            return error
    auth = AUTH_CODES.get(carrier_name, frozenset())
    if any(str(m.code) in auth for m in messages):
        return CarrierAuthError(f"{code} refused the credentials: {detail}", provider_code=code)
    return CarrierRejectedError(f"{code}: {detail}", provider_code=code, status=status)
