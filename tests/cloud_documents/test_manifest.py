"""Manifests: CSV reads back with its columns and totals, PDF pages hold every tracking number."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import pytest

from cloud_sync.carriers.documents import DocumentError, Party, fonts, render_manifest
from cloud_sync.carriers.documents.manifest import (
    COLUMNS,
    FONT_PT,
    ROWS_PER_PAGE,
    WEIGHT_COLUMN_PT,
    page_count,
    render_manifest_csv,
    render_manifest_pdf,
)
from cloud_sync.carriers.documents.model import MAX_WEIGHT_G, format_weight
from tests.cloud_documents.conftest import manifest, manifest_line, page_texts


def _rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


def test_csv_has_header_rows_and_totals() -> None:
    data = manifest(5)
    body, content_type = render_manifest(data, "csv")
    assert content_type == "text/csv; charset=utf-8"
    assert body.decode().splitlines()[0] == ",".join(COLUMNS)
    rows = _rows(body)
    assert [row["tracking_number"] for row in rows[:-1]] == [
        line.tracking_number for line in data.lines
    ]
    assert rows[0]["ship_date"] == "2026-11-25"
    assert rows[0]["recipient_name"] == "Zoë Ødegård"
    total = rows[-1]
    assert total["line"] == "TOTAL"
    assert int(total["parcels"]) == sum(int(row["parcels"]) for row in rows[:-1]) == 11
    assert int(total["weight_g"]) == sum(int(row["weight_g"]) for row in rows[:-1]) == 2515


def test_csv_neutralises_formulas_and_quotes_separators() -> None:
    party = Party('=HYPERLINK("x"), "quoted"', "Street", "-City", "0155", "NO")
    data = replace(manifest(0), lines=(manifest_line(1, recipient=party, service="@SUM(A1)"),))
    row = _rows(render_manifest_csv(data))[0]
    assert row["recipient_name"] == '\'=HYPERLINK("x"), "quoted"'
    assert row["recipient_city"] == "'-City"
    assert row["service"] == "'@SUM(A1)"


def test_empty_day_has_header_and_zero_totals() -> None:
    rows = _rows(render_manifest_csv(manifest(0)))
    assert rows == [dict.fromkeys(COLUMNS, "") | {"line": "TOTAL", "parcels": "0",
                                                   "weight_g": "0"}]  # fmt: skip
    assert len(page_texts(render_manifest_pdf(manifest(0)))) == 1


@pytest.mark.parametrize("count", [1, ROWS_PER_PAGE, ROWS_PER_PAGE + 1, 3 * ROWS_PER_PAGE + 5])
def test_pdf_pages_hold_every_tracking_number(count: int) -> None:
    data = manifest(count)
    body, content_type = render_manifest(data, "pdf")
    assert content_type == "application/pdf"
    pages = page_texts(body)
    assert len(pages) == page_count(count) == -(-count // ROWS_PER_PAGE)
    everything = "\n".join(pages)
    for line in data.lines:
        assert line.tracking_number in everything
    assert f"Page {len(pages)} of {len(pages)}" in pages[-1]
    assert f"Total: {count} lines, {data.total_parcels} parcels" in pages[-1]
    assert all("Total:" not in page for page in pages[:-1])


def test_job_manifest_is_titled_by_job_and_deterministic() -> None:
    data = manifest(2, job_id="job-7")
    body = render_manifest_pdf(data)
    assert body == render_manifest_pdf(data)
    assert "Manifest karrio:dhl_express - job job-7" in page_texts(body)[0]


def test_unicode_and_long_cells_do_not_crash() -> None:
    party = Party("张伟 " * 50, "Street", "Zoë Ødegård-by-the-sea " * 5, "X" * 40, "CN")
    data = replace(manifest(0), lines=(manifest_line(1, recipient=party),))
    text = page_texts(render_manifest_pdf(data))[0]
    assert "张伟" in text
    assert "\u2026" in text


def test_manifest_validation() -> None:
    line = manifest_line(1)
    with pytest.raises(DocumentError, match="twice"):
        replace(manifest(0), lines=(line, line))
    with pytest.raises(DocumentError, match="at least one line"):
        manifest(0, job_id="job-7")
    with pytest.raises(DocumentError, match="ManifestLine"):
        replace(manifest(0), lines=("nope",))  # type: ignore[arg-type]
    with pytest.raises(DocumentError) as caught:
        replace(manifest(0), generated_at=manifest(0).generated_at.replace(tzinfo=None))
    assert caught.value.field == "generated_at"
    with pytest.raises(DocumentError) as caught:
        replace(manifest(0), day=manifest(0).generated_at)
    assert caught.value.field == "day"
    with pytest.raises(DocumentError, match="more than"):
        replace(manifest(0), lines=(line,) * 10_001)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(DocumentError) as caught:
        render_manifest(manifest(1), "xlsx")
    assert caught.value.field == "format"


def test_weight_column_holds_the_heaviest_line() -> None:
    widest = format_weight(MAX_WEIGHT_G)
    assert fonts.width(widest, FONT_PT) <= WEIGHT_COLUMN_PT - 4
    assert fonts.width("Weight", FONT_PT) <= WEIGHT_COLUMN_PT - 4
