"""A site's own couriers priced from a tariff table: zones, distance bands, weight bands.

No external calls. The drop-off postcode picks a zone (longest matching prefix); failing
that, the distance between pickup and drop-off (when both have coordinates) picks a band.
The parcels' total weight adds its band's surcharge. No zone or band, or too heavy: the
quote is rejected (no service). Jobs are ids derived from the idempotency key, so booking
twice under one key books once; status comes from ``status_source`` (our own PoD flow).
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .connector import (
    Address,
    CarrierJob,
    CarrierJobRef,
    JobRequest,
    JobStatus,
    Label,
    Manifest,
    Quote,
    QuoteRequest,
)
from .errors import CarrierError, CarrierRejectedError

PROVIDER_CODE = "tariff"
EARTH_RADIUS_KM = 6371.0
# A table's prices hold until the site edits it; a day keeps an offer open all shift.
DEFAULT_QUOTE_LIFETIME_S = 86_400
Money = Annotated[int, Field(ge=0, le=10**12)]
Minutes = Annotated[int, Field(ge=0, le=60 * 24 * 30)]
StatusSource = Callable[[CarrierJobRef], Awaitable[JobStatus | None]]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Zone(_Strict):
    """Drop-offs whose postcode starts with one of ``postcodes``."""

    name: str
    postcodes: list[Annotated[str, Field(min_length=1, max_length=16)]]
    amount_minor: Money
    lead_minutes: Minutes
    country: str | None = None


class DistanceBand(_Strict):
    """Trips up to ``max_km`` (as the crow flies)."""

    max_km: Annotated[float, Field(gt=0, le=20_000)]
    amount_minor: Money
    lead_minutes: Minutes


class WeightBand(_Strict):
    """Total weight up to ``max_g`` adds ``surcharge_minor``."""

    max_g: Annotated[int, Field(gt=0)]
    surcharge_minor: Money = 0


class TariffTable(_Strict):
    """The whole table."""

    service: Annotated[str, Field(min_length=1, max_length=64)] = "own_courier"
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    quote_lifetime_s: Annotated[int, Field(gt=0, le=7 * 86_400)] = DEFAULT_QUOTE_LIFETIME_S
    zones: list[Zone] = Field(default_factory=list)
    distance_bands: list[DistanceBand] = Field(default_factory=list)
    weight_bands: list[WeightBand] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something_to_price(self) -> TariffTable:
        if not self.zones and not self.distance_bands:
            raise ValueError("a tariff needs zones or distance_bands")
        return self


def parse_table(data: Mapping[str, Any]) -> TariffTable:
    """A validated table; CarrierError naming the first problem."""
    try:
        return TariffTable.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "table"
        raise CarrierError(f"tariff table: {where}: {first['msg']}") from None


def load_table(path: Path) -> TariffTable:
    """A table from a ``.toml`` or ``.json`` file."""
    try:
        text = path.read_text("utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CarrierError(f"tariff table {path}: {type(exc).__name__}") from exc
    if not isinstance(data, dict):
        raise CarrierError(f"tariff table {path}: not a table")
    return parse_table(data)


def distance_km(a: Address, b: Address) -> float | None:
    """Great-circle distance, or None without coordinates on both ends."""
    if a.lat is None or a.lng is None or b.lat is None or b.lng is None:
        return None
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lng - a.lng)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _zone(table: TariffTable, dropoff: Address) -> Zone | None:
    postcode = dropoff.postcode.replace(" ", "").upper()
    best: tuple[int, Zone] | None = None
    for zone in table.zones:
        if zone.country is not None and zone.country != dropoff.country:
            continue
        for prefix in zone.postcodes:
            clean = prefix.replace(" ", "").upper()
            if postcode.startswith(clean) and (best is None or len(clean) > best[0]):
                best = (len(clean), zone)
    return None if best is None else best[1]


def price(table: TariffTable, request: QuoteRequest) -> tuple[int, int, str]:
    """(amount, lead minutes, what priced it); CarrierRejectedError when out of service."""
    zone = _zone(table, request.dropoff)
    if zone is not None:
        base, lead, basis = zone.amount_minor, zone.lead_minutes, f"zone:{zone.name}"
    else:
        km = distance_km(request.pickup, request.dropoff)
        band = (
            None
            if km is None
            else next(
                (b for b in sorted(table.distance_bands, key=lambda b: b.max_km) if km <= b.max_km),
                None,
            )
        )
        if band is None:
            raise CarrierRejectedError("no zone or distance band serves this drop-off")
        base, lead, basis = band.amount_minor, band.lead_minutes, f"distance:{band.max_km:g}km"
    weight = sum(parcel.weight_g for parcel in request.parcels)
    surcharge = 0
    if table.weight_bands:
        fits = [b for b in sorted(table.weight_bands, key=lambda b: b.max_g) if weight <= b.max_g]
        if not fits:
            raise CarrierRejectedError(f"{weight} g is over the heaviest weight band")
        surcharge = fits[0].surcharge_minor
    return base + surcharge, lead, basis


async def _pending(_: CarrierJobRef) -> JobStatus | None:
    return None


class TariffConnector:
    """The ``tariff`` connector over one table."""

    provider_code = PROVIDER_CODE

    def __init__(
        self,
        table: TariffTable,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        status_source: StatusSource = _pending,
    ) -> None:
        self.table = table
        self._now = now
        self._status_source = status_source

    async def quote(self, request: QuoteRequest) -> list[Quote]:
        """One quote from the table."""
        amount, lead, basis = price(self.table, request)
        now = self._now()
        start = max(request.ready_at, now)
        return [
            Quote(
                PROVIDER_CODE, self.table.service, amount, self.table.currency,
                start + timedelta(minutes=lead),
                now + timedelta(seconds=self.table.quote_lifetime_s),
                None, {"basis": basis},
            )
        ]  # fmt: skip

    async def create_job(self, request: JobRequest, *, idempotency_key: str) -> CarrierJob:
        """A job id derived from the key: the same key, the same job."""
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest().upper()
        return CarrierJob(PROVIDER_CODE, f"tt_{digest[:20]}", f"TT{digest[:12]}", "pending")

    async def get_status(self, job: CarrierJobRef) -> JobStatus:
        """What our own flow says, or pending."""
        found = await self._status_source(job)
        return found if found is not None else JobStatus("pending", self._now())

    async def cancel_job(self, job: CarrierJobRef) -> None:
        """Nothing to tell anyone outside: our own couriers read our task list."""

    async def get_label(self, job: CarrierJobRef) -> Label | None:
        """None: we render our own label."""
        return None

    async def get_manifest(self, day: date) -> Manifest | None:
        """None: our own manifest covers it."""
        return None
