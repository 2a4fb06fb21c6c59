"""Building blocks of the API's request models, in a leaf module the carrier views can use
without importing the API package (which imports them)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

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


def _has_nul(value: object) -> bool:
    """Whether a JSON value holds U+0000 in any string, key or value, at any depth."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False


class Strict(BaseModel):
    """A request object: no unknown keys, no type coercion, no U+0000 in any text.

    PostgreSQL's text cannot hold U+0000 (SQLite's can): refused here, as a 400 on both
    backends, rather than a server error on one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: object) -> object:
        if _has_nul(data):
            raise ValueError("text must not contain U+0000 (NUL)")
        return data
