"""Validation refuses what no document can show; fonts place every character somewhere."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloud_sync.carriers.documents import DocumentError, Party, fonts, render_label
from cloud_sync.carriers.documents.model import format_weight
from cloud_sync.carriers.errors import CarrierError
from cloud_sync.errors import CloudError, InvalidRequestError
from tests.cloud_documents.conftest import label


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"tracking_number": ""}, "tracking_number"),
        ({"tracking_number": "1Z 999"}, "tracking_number"),
        ({"tracking_number": "A>B"}, "tracking_number"),
        ({"tracking_number": "A" * 36}, "tracking_number"),
        ({"tracking_number": "AB" * 16}, "tracking_number"),
        ({"job_url": "ftp://x.example/"}, "job_url"),
        ({"job_url": "https://x.example/ space"}, "job_url"),
        ({"job_url": "https://x.example/" + "x" * 240}, "job_url"),
        ({"task_id": ""}, "task_id"),
        ({"task_id": "täsk"}, "task_id"),
        ({"provider_code": "x" * 129}, "provider_code"),
        ({"service": " "}, "service"),
        ({"service": "a\nb"}, "service"),
        ({"weight_g": 0}, "weight_g"),
        ({"weight_g": True}, "weight_g"),
        ({"weight_g": 1_000_001}, "weight_g"),
        ({"parcel_number": 2}, "parcel_number"),
        ({"parcel_count": 1000}, "parcel_count"),
        ({"ship_date": datetime(2026, 1, 1, tzinfo=UTC)}, "ship_date"),
        ({"ship_date": "2026-01-01"}, "ship_date"),
    ],
)
def test_invalid_label_data_is_refused(changes: dict[str, object], field: str) -> None:
    with pytest.raises(DocumentError) as caught:
        label(**changes)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ""}, "name"),
        ({"street": "x" * 1001}, "street"),
        ({"city": "\x00"}, "city"),
        ({"postcode": "1" * 41}, "postcode"),
        ({"phone": "\ud800"}, "phone"),
        ({"country": "de"}, "country"),
        ({"country": "DEU"}, "country"),
    ],
)
def test_invalid_party_is_refused(changes: dict[str, str], field: str) -> None:
    fields = {"name": "A", "street": "B", "city": "C", "postcode": "", "country": "DE"}
    with pytest.raises(DocumentError) as caught:
        Party(**(fields | changes))
    assert caught.value.field == field


def test_document_error_is_a_carrier_error_and_a_400() -> None:
    error = DocumentError("x", "bad")
    assert isinstance(error, CarrierError)
    assert isinstance(error, InvalidRequestError)
    assert isinstance(error, CloudError)
    assert error.kind == "document"
    assert error.provider_code is None


def test_unknown_label_format_is_refused() -> None:
    with pytest.raises(DocumentError) as caught:
        render_label(label(), "png")
    assert caught.value.field == "format"


def test_second_parcel_and_weights() -> None:
    assert label(parcel_number=2, parcel_count=3).parcel_number == 2
    assert format_weight(1250) == "1.250 kg"
    assert format_weight(7) == "0.007 kg"
    assert Party("A", "B", "C", "", "DE").locality == "C DE"


def test_latin_font_falls_back_to_the_one_reportlab_ships(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped.ttf"
    assert fonts.latin_font_file((tmp_path / "missing.ttf", shipped)) == shipped
    assert fonts.latin_font_file() in fonts.LATIN_FONT_FILES


def test_fonts_place_every_character() -> None:
    runs = fonts.runs("Zoë 张伟 김민준 x\u0301 \U0001f642 \u0300")
    assert [run.font for run in runs] == [fonts.LATIN, fonts.CHINESE, fonts.LATIN, fonts.KOREAN,
                                          fonts.LATIN]  # fmt: skip
    assert fonts.printable("a \t\n b\U0001f642") == "a b?"
    assert fonts.runs("张\u2066x") == [fonts.Run(fonts.CHINESE, "张"), fonts.Run(fonts.LATIN, "x")]
    assert fonts.fit("abc", 10, 0.1) == ""
    assert fonts.wrap("", 10, 100, 3) == []
    assert fonts.wrap("x" * 50, 10, 0.1, 2)[0] == "x"
