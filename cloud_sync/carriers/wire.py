"""Contract values to and from the JSON stored with offers and jobs (pure)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cloud_sync.protocol.fields import parse_rfc3339, rfc3339

from .connector import Address, Parcel, Quote, QuoteRequest
from .errors import CarrierError


def address_json(address: Address) -> dict[str, Any]:
    """An address as a JSON object."""
    return dataclasses.asdict(address)


def address_from(data: Mapping[str, Any]) -> Address:
    """An address from its JSON object."""
    return Address(**data)


def parcel_from(data: Mapping[str, Any]) -> Parcel:
    """A parcel from its JSON object."""
    return Parcel(**data)


def request_json(request: QuoteRequest) -> dict[str, Any]:
    """A quote request as stored with its offers."""
    return {
        "task_id": request.task_id,
        "tenant": request.tenant,
        "pickup": address_json(request.pickup),
        "dropoff": address_json(request.dropoff),
        "parcels": [dataclasses.asdict(parcel) for parcel in request.parcels],
        "ready_at": rfc3339(request.ready_at),
        "deliver_by": None if request.deliver_by is None else rfc3339(request.deliver_by),
    }


def request_from(data: Mapping[str, Any]) -> QuoteRequest:
    """The stored quote request; CarrierError if the row was tampered with."""
    try:
        deliver_by = data.get("deliver_by")
        return QuoteRequest(
            task_id=data["task_id"],
            tenant=data["tenant"],
            pickup=address_from(data["pickup"]),
            dropoff=address_from(data["dropoff"]),
            parcels=tuple(parcel_from(item) for item in data["parcels"]),
            ready_at=parse_rfc3339(data["ready_at"]),
            deliver_by=None if deliver_by is None else parse_rfc3339(deliver_by),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CarrierError(f"stored quote request is unreadable: {type(exc).__name__}") from exc


def valid_quote(quote: Quote) -> bool:
    """Whether a connector's quote can be stored and ranked."""
    return (
        len(quote.currency) == 3
        and quote.currency.isalpha()
        and quote.currency.isupper()
        and isinstance(quote.amount_minor, int)
        and quote.amount_minor >= 0
        and quote.eta.tzinfo is not None
        and quote.expires_at.tzinfo is not None
        and 0 < len(quote.service) <= 128
    )
