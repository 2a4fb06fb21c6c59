"""The connector contract every carrier integration implements, and the values it trades in.

Money is integer minor units plus an ISO 4217 currency; every time is an aware UTC datetime.
Connectors raise only ``cloud_sync.carriers.errors`` exceptions (translated at their boundary).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol, runtime_checkable

JobStatusName = Literal["pending", "picked_up", "delivered", "cancelled", "failed"]
JOB_STATUSES: tuple[JobStatusName, ...] = (
    "pending",
    "picked_up",
    "delivered",
    "cancelled",
    "failed",
)
# A job in one of these states changes no more: its cost is final.
FINAL_STATUSES: frozenset[str] = frozenset({"delivered", "cancelled", "failed"})


@dataclass(frozen=True, slots=True)
class Address:
    """A pickup or drop-off point; lat/lng when the caller knows them."""

    name: str
    phone: str
    street: str
    city: str
    postcode: str
    country: str
    lat: float | None = None
    lng: float | None = None


@dataclass(frozen=True, slots=True)
class Parcel:
    """One parcel: grams and centimetres."""

    weight_g: int
    length_cm: int
    width_cm: int
    height_cm: int
    description: str = ""


@dataclass(frozen=True, slots=True)
class QuoteRequest:
    """What to move, from where to where, and when."""

    task_id: str
    tenant: str
    pickup: Address
    dropoff: Address
    parcels: tuple[Parcel, ...]
    ready_at: datetime
    deliver_by: datetime | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    """One carrier service's price and estimated delivery time, valid until ``expires_at``."""

    provider_code: str
    service: str
    amount_minor: int
    currency: str
    eta: datetime
    expires_at: datetime
    carrier_quote_id: str | None = None
    raw: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class JobRequest:
    """Book the quoted service for a task."""

    quote: Quote
    task_id: str
    pickup: Address
    dropoff: Address
    parcels: tuple[Parcel, ...]


@dataclass(frozen=True, slots=True)
class CarrierJob:
    """A booked job as the carrier knows it."""

    provider_code: str
    carrier_job_id: str
    tracking_number: str
    status: JobStatusName
    tracking_url: str | None = None
    label_url: str | None = None


@dataclass(frozen=True, slots=True)
class CarrierJobRef:
    """Enough to ask the carrier about a job again."""

    provider_code: str
    carrier_job_id: str
    tracking_number: str


@dataclass(frozen=True, slots=True)
class Cost:
    """What a job cost in the end; ``components`` split ``amount_minor`` (fuel, waiting...)."""

    amount_minor: int
    currency: str
    components: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Proof:
    """The carrier's proof of delivery."""

    pincode_verified: bool | None = None
    picture_url: str | None = None
    signature_url: str | None = None
    signer_name: str | None = None


@dataclass(frozen=True, slots=True)
class JobStatus:
    """Where a job stands, since ``at``; ``cost`` once the carrier knows it."""

    status: JobStatusName
    at: datetime
    cost: Cost | None = None
    proof: Proof | None = None


@dataclass(frozen=True, slots=True)
class Label:
    """A shipping label as the carrier renders it (``format``: pdf, zpl, png)."""

    format: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Manifest:
    """A carrier's end-of-day manifest (``format``: pdf, csv)."""

    format: str
    data: bytes


@runtime_checkable
class Connector(Protocol):
    """One carrier integration: quote, book, follow, cancel, documents."""

    provider_code: str

    async def quote(self, request: QuoteRequest) -> list[Quote]:
        """Every service the carrier offers for ``request`` (may be empty)."""
        ...

    async def create_job(self, request: JobRequest, *, idempotency_key: str) -> CarrierJob:
        """Book the quote; the same ``idempotency_key`` never books twice."""
        ...

    async def get_status(self, job: CarrierJobRef) -> JobStatus:
        """The job's current status."""
        ...

    async def cancel_job(self, job: CarrierJobRef) -> None:
        """Cancel the job (CarrierRejectedError once it is past cancelling)."""
        ...

    async def get_label(self, job: CarrierJobRef) -> Label | None:
        """The carrier's label, or None when we render our own."""
        ...

    async def get_manifest(self, day: date) -> Manifest | None:
        """The carrier's manifest of ``day``, or None when the carrier has none."""
        ...


def job_ref(job: CarrierJob) -> CarrierJobRef:
    """The reference of a booked job."""
    return CarrierJobRef(job.provider_code, job.carrier_job_id, job.tracking_number)
