"""Field types shared by every payload: identifiers, timestamps, hashes, bounded text."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from .ids import ULID_PATTERN

PROTOCOL_VERSION = 1
# Sequence numbers land in SQLite INTEGER / PostgreSQL BIGINT, both signed 64-bit.
MAX_SEQ = 2**63 - 1
# Long enough for a ULID, a UUID or a vendor's id with a prefix; short enough for a log line.
MAX_IDENT_LENGTH = 128
# A hub_id is also an MQTT topic level, a client id and a broker user name.
MAX_HUB_ID_LENGTH = 64
# Free text (reasons, messages) is for humans reading a dashboard, not for data.
MAX_TEXT_LENGTH = 512
# Enum-like strings (alert kinds, reasons, clock sources) stay short machine words.
MAX_TOKEN_LENGTH = 64
# A details object is a handful of diagnostic values, never a dump.
MAX_DETAILS = 32

IDENT_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._:-]{{0,{MAX_IDENT_LENGTH - 1}}}$"
HUB_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_HUB_ID_LENGTH - 1}}}$"
TOKEN_PATTERN = rf"^[a-z0-9][a-z0-9_.-]{{0,{MAX_TOKEN_LENGTH - 1}}}$"
HEX64_PATTERN = r"^[0-9a-f]{64}$"
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?Z")


def rfc3339(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with millisecond precision and a Z."""
    if moment.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(value: object) -> datetime:
    """Parse ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` or an aware datetime as UTC; else ValueError."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("datetime must be timezone-aware")
        return value.astimezone(UTC)
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        raise ValueError("must be an RFC 3339 UTC timestamp ending in Z")
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("not a valid calendar date and time") from exc


Timestamp = Annotated[
    datetime, BeforeValidator(parse_rfc3339), PlainSerializer(rfc3339, return_type=str)
]
Ident = Annotated[str, Field(pattern=IDENT_PATTERN)]
HubId = Annotated[str, Field(pattern=HUB_ID_PATTERN)]
Token = Annotated[str, Field(pattern=TOKEN_PATTERN)]
Ulid = Annotated[str, Field(pattern=f"^{ULID_PATTERN.pattern}$")]
Hex64 = Annotated[str, Field(pattern=HEX64_PATTERN)]
Text = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]
Version = Annotated[int, Field(ge=1, le=MAX_SEQ)]
Seq = Annotated[int, Field(ge=1, le=MAX_SEQ)]
Count = Annotated[int, Field(ge=0, le=MAX_SEQ)]
Scalar = Text | int | Annotated[float, Field(allow_inf_nan=False)] | bool | None
Details = Annotated[dict[Token, Scalar], Field(max_length=MAX_DETAILS)]


class WireModel(BaseModel):
    """Base of every wire model: immutable, no unknown members, no type coercion."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def dump(model: BaseModel) -> dict[str, Any]:
    """Return the JSON-ready dict of a wire model."""
    return model.model_dump(mode="json")
