"""Building blocks of the API's request models, in a leaf module the carrier views can use
without importing the API package (which imports them)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

# RFC 3339 section 5.6 date-time with seconds; an offset or Z (upper case only: strict).
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")


def parse_date_time(value: object) -> datetime:
    """An RFC 3339 date-time with an offset, as UTC to the millisecond; else ValueError."""
    if not isinstance(value, str) or not _DATE_TIME.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with seconds and an offset or Z")
    try:
        moment = datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # e.g. 9999-12-31T23:59:59-01:00 is past year 9999
        raise ValueError("not a valid calendar date and time") from exc
    # The wire carries milliseconds: store what the hub will hold and the API will show.
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


DateTime = Annotated[datetime, BeforeValidator(parse_date_time)]


class Strict(BaseModel):
    """A request object: no unknown keys, no type coercion."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
