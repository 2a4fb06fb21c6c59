"""The request parser: a valid WindowRequest or pydantic's ValidationError, for any input."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cloud_sync.api.models import WindowRequest
from cloud_sync.requests import parse_date_time

from .conftest import window_request

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
FIELDS = st.sampled_from([*WindowRequest.model_fields, "code", ""])
FUZZ = settings(max_examples=200, deadline=None)


@FUZZ
@given(st.dictionaries(FIELDS, JSON, max_size=6))
def test_any_object_parses_or_is_a_validation_error(changes: dict[str, Any]) -> None:
    try:
        parsed = WindowRequest.model_validate(window_request(**changes))
    except ValidationError:
        return  # refused as the API refuses it: a 400 naming the field
    assert parsed.ends_at > parsed.starts_at
    assert parsed.starts_at.tzinfo is UTC


@FUZZ
@given(st.text(alphabet="0123456789-+:.TZ tz", max_size=40) | st.datetimes())
def test_any_time_text_is_utc_or_a_value_error(value: object) -> None:
    try:
        moment = parse_date_time(value)
    except ValueError:
        return
    assert moment.tzinfo is UTC
    assert moment.microsecond % 1000 == 0


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        ("2026-03-01T23:30:00-01:00", datetime(2026, 3, 2, 0, 30, tzinfo=UTC)),
        ("2026-03-01T12:00:00.123456Z", datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_rfc3339_date_times(text: str, moment: datetime) -> None:
    assert parse_date_time(text) == moment


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01t12:00:00z",
        "2026-03-01T12:00:00+0100",
        "2026-03-01T24:00:00Z",
        "0001-01-01T00:00:00+00:01",
    ],
)
def test_other_spellings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"RFC 3339|calendar"):
        parse_date_time(text)
