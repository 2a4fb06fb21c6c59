"""What a label and a manifest show: frozen dataclasses that refuse invalid input."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from cloud_sync.carriers.documents.errors import DocumentError
from cloud_sync.carriers.documents.symbols import code128_fits

# Carrier APIs (DHL, UPS, Uber Direct) cap tracking numbers at 35 characters.
MAX_TRACKING_LEN = 35
# Tracking numbers are letters and digits (UPS 1Z..., S10 RR123456785CH, DHL digits); anything
# else would have to survive Code128 subset switching and ZPL's '>' invocation codes.
TRACKING_RE = re.compile(r"[A-Za-z0-9]+")
# A QR code of version 12 at error level M holds 287 bytes; 256 keeps its modules >= 3 dots.
MAX_URL_LEN = 256
URL_RE = re.compile(r"https?://[!-~]+")
# Identifiers on the wire are at most 128 characters (cloud_sync.store.schema.IDENT).
MAX_IDENT_LEN = 128
# Names and services are bounded so a hostile value cannot make rendering slow; labels truncate
# what does not fit long before these limits.
MAX_NAME_LEN = 200
MAX_ADDRESS_LEN = 1000
MAX_SHORT_LEN = 40
# 1 t: anything heavier is freight, not a parcel label.
MAX_WEIGHT_G = 1_000_000
# A label shows "parcel i of n"; carriers cap a shipment at 99 (DHL) to 200 (UPS) pieces.
MAX_PARCELS = 999
# A day's manifest for one carrier: 10 000 lines render in seconds and is far above one site's day.
MAX_MANIFEST_LINES = 10_000
COUNTRY_RE = re.compile(r"[A-Z]{2}")
# Control characters and lone surrogates cannot be printed; everything else is rendered
# (glyphs no font has become '?').
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs"})


def check_text(field: str, value: str, *, max_len: int, required: bool = True) -> None:
    """Raise DocumentError unless ``value`` is printable text of at most ``max_len`` chars."""
    if required and not value.strip():
        raise DocumentError(field, "must not be empty")
    if len(value) > max_len:
        raise DocumentError(field, f"is longer than {max_len} characters")
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in value):
        raise DocumentError(field, "contains control characters")


def check_ident(field: str, value: str) -> None:
    """Raise DocumentError unless ``value`` is a printable ASCII identifier."""
    if not 0 < len(value) <= MAX_IDENT_LEN or not value.isascii() or not value.isprintable():
        raise DocumentError(field, f"must be 1-{MAX_IDENT_LEN} printable ASCII characters")


def check_tracking(field: str, value: str) -> None:
    """Raise DocumentError unless ``value`` is a tracking number a Code128 can carry."""
    if len(value) > MAX_TRACKING_LEN or not TRACKING_RE.fullmatch(value):
        raise DocumentError(field, f"must be 1-{MAX_TRACKING_LEN} ASCII letters or digits")


def check_count(field: str, value: int, *, low: int, high: int) -> None:
    """Raise DocumentError unless ``low <= value <= high`` (and it is a real int)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DocumentError(field, f"must be an integer from {low} to {high}")


@dataclass(frozen=True, slots=True)
class Party:
    """A sender or recipient as printed: name, street, postcode, city, country, phone."""

    name: str
    street: str
    city: str
    postcode: str
    country: str
    phone: str = ""

    def __post_init__(self) -> None:
        check_text("name", self.name, max_len=MAX_NAME_LEN)
        check_text("street", self.street, max_len=MAX_ADDRESS_LEN)
        check_text("city", self.city, max_len=MAX_NAME_LEN)
        check_text("postcode", self.postcode, max_len=MAX_SHORT_LEN, required=False)
        check_text("phone", self.phone, max_len=MAX_SHORT_LEN, required=False)
        if not COUNTRY_RE.fullmatch(self.country):
            raise DocumentError("country", "must be an ISO 3166-1 alpha-2 code such as 'DE'")

    @property
    def locality(self) -> str:
        """Postcode, city and country on one line."""
        return " ".join(part for part in (self.postcode, self.city, self.country) if part)


@dataclass(frozen=True, slots=True)
class LabelData:
    """Everything one 4x6 shipping label shows."""

    tracking_number: str
    job_url: str
    task_id: str
    provider_code: str
    service: str
    weight_g: int
    ship_date: date
    sender: Party
    recipient: Party
    parcel_number: int = 1
    parcel_count: int = 1

    def __post_init__(self) -> None:
        check_tracking("tracking_number", self.tracking_number)
        if not code128_fits(self.tracking_number):
            raise DocumentError("tracking_number", "too long for a readable Code128 on 4 inches")
        if len(self.job_url) > MAX_URL_LEN or not URL_RE.fullmatch(self.job_url):
            raise DocumentError(
                "job_url",
                f"must be an http(s) URL of printable ASCII, at most {MAX_URL_LEN} characters",
            )
        check_ident("task_id", self.task_id)
        check_ident("provider_code", self.provider_code)
        check_text("service", self.service, max_len=MAX_NAME_LEN)
        check_count("weight_g", self.weight_g, low=1, high=MAX_WEIGHT_G)
        check_count("parcel_count", self.parcel_count, low=1, high=MAX_PARCELS)
        check_count("parcel_number", self.parcel_number, low=1, high=self.parcel_count)
        if isinstance(self.ship_date, datetime) or not isinstance(self.ship_date, date):
            raise DocumentError("ship_date", "must be a date")


@dataclass(frozen=True, slots=True)
class ManifestLine:
    """One row of a manifest: one parcel (or one job with ``parcels`` pieces)."""

    task_id: str
    carrier_job_id: str
    tracking_number: str
    service: str
    recipient: Party
    parcels: int
    weight_g: int

    def __post_init__(self) -> None:
        check_ident("task_id", self.task_id)
        check_ident("carrier_job_id", self.carrier_job_id)
        check_tracking("tracking_number", self.tracking_number)
        check_text("service", self.service, max_len=MAX_NAME_LEN)
        check_count("parcels", self.parcels, low=1, high=MAX_PARCELS)
        check_count("weight_g", self.weight_g, low=1, high=MAX_WEIGHT_G)


@dataclass(frozen=True, slots=True)
class ManifestData:
    """A manifest: one job's (``job_id`` set) or one carrier's day of jobs (``job_id`` None)."""

    provider_code: str
    day: date
    generated_at: datetime
    shipper: Party
    lines: tuple[ManifestLine, ...]
    job_id: str | None = None

    def __post_init__(self) -> None:
        check_ident("provider_code", self.provider_code)
        if isinstance(self.day, datetime) or not isinstance(self.day, date):
            raise DocumentError("day", "must be a date")
        offset = self.generated_at.utcoffset() if isinstance(self.generated_at, datetime) else None
        if offset != timedelta(0):
            raise DocumentError("generated_at", "must be an aware UTC datetime")
        if self.job_id is not None:
            check_ident("job_id", self.job_id)
            if not self.lines:
                raise DocumentError("lines", "a job's manifest needs at least one line")
        self._check_lines()

    def _check_lines(self) -> None:
        if len(self.lines) > MAX_MANIFEST_LINES:
            raise DocumentError("lines", f"more than {MAX_MANIFEST_LINES} lines")
        seen: set[str] = set()
        for line in self.lines:
            if not isinstance(line, ManifestLine):
                raise DocumentError("lines", "must hold ManifestLine values")
            if line.tracking_number in seen:
                raise DocumentError("lines", f"tracking number {line.tracking_number} twice")
            seen.add(line.tracking_number)

    @property
    def total_parcels(self) -> int:
        """Pieces over all lines."""
        return sum(line.parcels for line in self.lines)

    @property
    def total_weight_g(self) -> int:
        """Grams over all lines."""
        return sum(line.weight_g for line in self.lines)

    @property
    def title(self) -> str:
        """The manifest's heading."""
        scope = f"job {self.job_id}" if self.job_id else f"{self.day.isoformat()}"
        return f"Manifest {self.provider_code} - {scope}"


def format_weight(weight_g: int) -> str:
    """Grams as kilograms with three decimals: 1250 -> '1.250 kg'."""
    return f"{weight_g // 1000}.{weight_g % 1000:03d} kg"
