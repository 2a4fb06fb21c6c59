"""The carrier API's request bodies (strict pydantic) and JSON answers (no credentials ever)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, JsonValue, field_validator
from pydantic_core.core_schema import ValidationInfo

from cloud_sync.protocol.fields import Ident, rfc3339
from cloud_sync.requests import DateTime, Strict
from cloud_sync.store.carriers import JobRow, OfferRow, PartnerRow

from .breaker import BreakerSnapshot
from .connector import Address, Parcel, QuoteRequest
from .shopping import ShopResult, Skipped

# Provider codes: "tariff", "uber_direct", "karrio:dhl_express".
PROVIDER_PATTERN = r"^[a-z0-9_]{1,32}(:[a-z0-9_]{1,31})?$"
# A credential set is a handful of strings (id, secret, account); a PEM key fits in 4 KiB.
MAX_CREDENTIALS = 16
MAX_SECRET = 4096
# A parcel over a tonne or a side over 10 m is a freight shipment, not a delivery.
MAX_WEIGHT_G = 1_000_000
MAX_SIDE_CM = 1000
# A rate shop is for one delivery: a few dozen parcels at most.
MAX_PARCELS = 50
Name = Annotated[str, Field(min_length=1, max_length=128)]
Short = Annotated[str, Field(max_length=128)]
Secret = Annotated[str, Field(max_length=MAX_SECRET)]
Side = Annotated[int, Field(ge=1, le=MAX_SIDE_CM)]


class PartnerIn(Strict):
    """``POST /v1/{tenant}/carrier-partners``."""

    provider_code: Annotated[str, Field(pattern=PROVIDER_PATTERN)]
    name: Name
    credentials: Annotated[dict[Short, Secret], Field(max_length=MAX_CREDENTIALS)] = Field(
        default_factory=dict
    )
    settings: dict[Short, JsonValue] = Field(default_factory=dict)
    status: Literal["active", "disabled"] = "active"


class PartnerPatch(Strict):
    """``PATCH /v1/{tenant}/carrier-partners/{id}``: what is given changes."""

    name: Name | None = None
    credentials: Annotated[dict[Short, Secret], Field(max_length=MAX_CREDENTIALS)] | None = None
    settings: dict[Short, JsonValue] | None = None
    status: Literal["active", "disabled"] | None = None


class AddressIn(Strict):
    """A pickup or drop-off."""

    name: Name
    phone: Annotated[str, Field(max_length=32)]
    street: Annotated[str, Field(min_length=1, max_length=256)]
    city: Name
    postcode: Annotated[str, Field(max_length=16)]
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lng: Annotated[float, Field(ge=-180, le=180)] | None = None

    def value(self) -> Address:
        """The contract's Address."""
        return Address(**self.model_dump())


class ParcelIn(Strict):
    """One parcel."""

    weight_g: Annotated[int, Field(ge=1, le=MAX_WEIGHT_G)]
    length_cm: Side
    width_cm: Side
    height_cm: Side
    description: Annotated[str, Field(max_length=512)] = ""


class RateShopIn(Strict):
    """``POST /v1/{tenant}/tasks/{id}/rate-shop``."""

    pickup: AddressIn
    dropoff: AddressIn
    parcels: Annotated[list[ParcelIn], Field(min_length=1, max_length=MAX_PARCELS)]
    ready_at: DateTime
    deliver_by: DateTime | None = None

    @field_validator("deliver_by")
    @classmethod
    def _after_ready(cls, deliver_by: datetime | None, info: ValidationInfo) -> datetime | None:
        ready_at = info.data.get("ready_at")
        if deliver_by is not None and isinstance(ready_at, datetime) and deliver_by <= ready_at:
            raise ValueError("must be after ready_at")
        return deliver_by

    def value(self, tenant: str, task_id: Ident) -> QuoteRequest:
        """The contract's QuoteRequest."""
        parcels = tuple(Parcel(**parcel.model_dump()) for parcel in self.parcels)
        return QuoteRequest(
            task_id, tenant, self.pickup.value(), self.dropoff.value(), parcels, self.ready_at,
            self.deliver_by,
        )  # fmt: skip


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def partner_json(row: PartnerRow) -> dict[str, Any]:
    """A partner; credentials are write-only: only whether some are set shows."""
    return {
        "partner_id": row.partner_id,
        "provider_code": row.provider_code,
        "name": row.name,
        "has_credentials": row.credentials is not None,
        "settings": row.settings,
        "status": row.status,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }


def breaker_json(partner_id: str, snap: BreakerSnapshot) -> dict[str, Any]:
    """A breaker's state."""
    return {
        "partner_id": partner_id,
        "state": snap.state,
        "failures": snap.failures,
        "threshold": snap.threshold,
        "window_s": snap.window_s,
        "cooldown_s": snap.cooldown_s,
        "opened_at": _time(snap.opened_at),
        "retry_at": _time(snap.retry_at),
    }


def offer_json(row: OfferRow, now: datetime) -> dict[str, Any]:
    """An offer with its score parts; ``status`` reads ``expired`` once past its expiry."""
    expired = row.status == "open" and row.expires_at <= now
    return {
        "offer_id": row.offer_id,
        "task_id": row.task_id,
        "partner_id": row.partner_id,
        "provider_code": row.provider_code,
        "service": row.service,
        "amount_minor": row.amount_minor,
        "currency": row.currency,
        "eta": rfc3339(row.eta),
        "expires_at": rfc3339(row.expires_at),
        "score": row.score,
        "score_parts": row.score_parts,
        "rank": row.rank,
        "status": "expired" if expired else row.status,
        "created_at": rfc3339(row.created_at),
    }


def skipped_json(item: Skipped) -> dict[str, Any]:
    """A partner that gave no offer."""
    return {
        "partner_id": item.partner_id,
        "provider_code": item.provider_code,
        "name": item.name,
        "reason": item.reason,
        "detail": item.detail,
        "retry_at": _time(item.retry_at),
    }


def shop_json(result: ShopResult, now: datetime) -> dict[str, Any]:
    """A rate shop's answer: ranked offers, then who was skipped and why."""
    return {
        "task_id": result.task_id,
        "offers": [offer_json(row, now) for row in result.offers],
        "skipped": [skipped_json(item) for item in result.skipped],
        "elapsed_ms": round(result.elapsed_s * 1000),
    }


def job_json(row: JobRow) -> dict[str, Any]:
    """A carrier job, with its cost once captured."""
    cost = None
    if row.cost_amount_minor is not None:
        cost = {
            "amount_minor": row.cost_amount_minor,
            "currency": row.cost_currency,
            "components": row.cost_components or {},
            "captured_at": _time(row.cost_captured_at),
        }
    return {
        "job_id": row.job_id,
        "task_id": row.task_id,
        "offer_id": row.offer_id,
        "partner_id": row.partner_id,
        "provider_code": row.provider_code,
        "service": row.service,
        "carrier_job_id": row.carrier_job_id,
        "tracking_number": row.tracking_number,
        "status": row.status,
        "status_at": rfc3339(row.status_at),
        "tracking_url": row.tracking_url,
        "label_url": row.label_url,
        "manifest_url": row.manifest_url,
        "quoted": {"amount_minor": row.quoted_amount_minor, "currency": row.currency},
        "eta": rfc3339(row.eta),
        "cost": cost,
        "proof": row.proof,
        "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
    }
