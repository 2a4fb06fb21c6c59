"""Hypothesis strategies for valid labels: any printable text, any fitting tracking number."""

from __future__ import annotations

from datetime import date

from hypothesis import assume
from hypothesis import strategies as st

from cloud_sync.carriers.documents import LabelData, Party
from cloud_sync.carriers.documents.symbols import code128_fits

_CHARS = st.characters(exclude_categories=("Cc", "Cs"))


def text(max_size: int, *, min_size: int = 1) -> st.SearchStrategy[str]:
    """Printable text that is not blank when required."""
    base = st.text(_CHARS, min_size=min_size, max_size=max_size)
    return base.filter(lambda value: value.strip()) if min_size else base


def parties() -> st.SearchStrategy[Party]:
    """Any valid party, any script."""
    return st.builds(
        Party,
        name=text(200), street=text(1000), city=text(200),
        postcode=text(40, min_size=0), country=st.from_regex(r"[A-Z]{2}", fullmatch=True),
        phone=text(40, min_size=0),
    )  # fmt: skip


@st.composite
def tracking_numbers(draw: st.DrawFn) -> str:
    """Letters and digits whose Code128 fits the label."""
    value = draw(st.from_regex(r"[A-Za-z0-9]{1,35}", fullmatch=True))
    assume(code128_fits(value))
    return value


def labels() -> st.SearchStrategy[LabelData]:
    """Any valid label."""
    idents = st.from_regex(r"[ -~]{1,128}", fullmatch=True)
    return st.builds(
        LabelData,
        tracking_number=tracking_numbers(),
        job_url=st.from_regex(r"https?://[!-~]{1,240}", fullmatch=True),
        task_id=idents, provider_code=idents, service=text(200),
        weight_g=st.integers(1, 1_000_000), ship_date=st.dates(date(2000, 1, 1)),
        sender=parties(), recipient=parties(),
    )  # fmt: skip
