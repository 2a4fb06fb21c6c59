"""Manifests: one job's parcels, or one carrier's day of jobs, as CSV or paginated PDF."""

from __future__ import annotations

import csv
import io
import math

from reportlab.lib.pagesizes import A4, landscape
from reportlab.pdfgen.canvas import Canvas

from cloud_sync.carriers.documents import fonts
from cloud_sync.carriers.documents.model import ManifestData, ManifestLine, format_weight
from cloud_sync.carriers.documents.pdf import new_canvas

COLUMNS = (
    "line", "ship_date", "provider_code", "task_id", "carrier_job_id", "tracking_number",
    "service", "recipient_name", "recipient_postcode", "recipient_city", "recipient_country",
    "parcels", "weight_g",
)  # fmt: skip
TOTAL = "TOTAL"
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection, OWASP).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PAGE: tuple[float, float] = landscape(A4)
MARGIN_PT = 36
ROW_PT = 14
FONT_PT = 8
HEADER_TOP_PT = 92
# A4 landscape leaves 595 - 2*36 - 92 (heading) - 60 (totals and signature) = 371 pt: 26 rows.
ROWS_PER_PAGE = 26
# (caption, width in points) per PDF column; the weight column takes the rest of the 770 pt.
PDF_COLUMNS = (
    ("#", 30), ("Tracking number", 140), ("Task", 80), ("Service", 80),
    ("Recipient", 140), ("Postcode", 60), ("City", 90), ("Country", 40),
    ("Parcels", 50),
)  # fmt: skip
WEIGHT_COLUMN_PT = 770 - sum(width for _, width in PDF_COLUMNS)


def _cell(value: str) -> str:
    """A text cell that a spreadsheet shows as text, never evaluates."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def _row(data: ManifestData, number: int, line: ManifestLine) -> list[str]:
    texts = [line.task_id, line.carrier_job_id, line.tracking_number, line.service,
             line.recipient.name, line.recipient.postcode, line.recipient.city,
             line.recipient.country]  # fmt: skip
    return [
        str(number),
        data.day.isoformat(),
        _cell(data.provider_code),
        *(_cell(text) for text in texts),
        str(line.parcels),
        str(line.weight_g),
    ]


def render_manifest_csv(data: ManifestData) -> bytes:
    """RFC 4180 CSV, UTF-8: a header row, one row per line, then a TOTAL row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for number, line in enumerate(data.lines, start=1):
        writer.writerow(_row(data, number, line))
    blanks = [""] * (len(COLUMNS) - 3)
    writer.writerow([TOTAL, *blanks, str(data.total_parcels), str(data.total_weight_g)])
    return buffer.getvalue().encode("utf-8")


def page_count(lines: int) -> int:
    """Pages of a PDF manifest with ``lines`` lines (an empty manifest still has one)."""
    return max(1, math.ceil(lines / ROWS_PER_PAGE))


def _top(top: float) -> float:
    return PAGE[1] - top


def _heading(canvas: Canvas, data: ManifestData, page: int, pages: int) -> None:
    room = PAGE[0] - 2 * MARGIN_PT
    fonts.draw(canvas, MARGIN_PT, _top(MARGIN_PT + 14), fonts.fit(data.title, 16, room - 90), 16)
    fonts.draw_right(
        canvas, PAGE[0] - MARGIN_PT, _top(MARGIN_PT + 14), f"Page {page} of {pages}", 9
    )
    shipper = f"Shipper: {data.shipper.name}, {data.shipper.street}, {data.shipper.locality}"
    fonts.draw(canvas, MARGIN_PT, _top(MARGIN_PT + 32), fonts.fit(shipper, 9, room), 9)
    stamp = data.generated_at.strftime("%Y-%m-%d %H:%M UTC")
    meta = f"Carrier {data.provider_code} - ship date {data.day.isoformat()} - generated {stamp}"
    fonts.draw(canvas, MARGIN_PT, _top(MARGIN_PT + 45), fonts.fit(meta, 9, room), 9)


def _cells(canvas: Canvas, top: float, cells: list[str]) -> None:
    """One table row: each cell cut to its column, weight right-aligned in the last."""
    x = MARGIN_PT
    for (_, width), text in zip(PDF_COLUMNS, cells, strict=False):
        fonts.draw(canvas, x, _top(top), fonts.fit(text, FONT_PT, width - 4), FONT_PT)
        x += width
    fonts.draw_right(canvas, x + WEIGHT_COLUMN_PT, _top(top), cells[-1], FONT_PT)


def _table(canvas: Canvas, lines: list[tuple[int, ManifestLine]]) -> float:
    """Header and rows; returns the top of the space below the table."""
    top = MARGIN_PT + HEADER_TOP_PT - 30
    _cells(canvas, top, [caption for caption, _ in PDF_COLUMNS] + ["Weight"])
    canvas.line(MARGIN_PT, _top(top + 4), PAGE[0] - MARGIN_PT, _top(top + 4))
    for number, line in lines:
        top += ROW_PT
        _cells(canvas, top, [str(number), line.tracking_number, line.task_id, line.service,
                             line.recipient.name, line.recipient.postcode, line.recipient.city,
                             line.recipient.country, str(line.parcels),
                             format_weight(line.weight_g)])  # fmt: skip
    return top + ROW_PT


def _totals(canvas: Canvas, data: ManifestData, top: float) -> None:
    canvas.line(MARGIN_PT, _top(top - 10), PAGE[0] - MARGIN_PT, _top(top - 10))
    total = (
        f"Total: {len(data.lines)} lines, {data.total_parcels} parcels, "
        f"{format_weight(data.total_weight_g)}"
    )
    fonts.draw(canvas, MARGIN_PT, _top(top + 4), total, 10)
    fonts.draw(
        canvas,
        MARGIN_PT,
        _top(top + 36),
        "Received by carrier (name, signature, time): " + "_" * 60,
        9,
    )


def render_manifest_pdf(data: ManifestData) -> bytes:
    """An A4 landscape PDF table, ``ROWS_PER_PAGE`` rows a page, totals on the last page."""
    buffer = io.BytesIO()
    canvas = new_canvas(buffer, PAGE, title=data.title)
    numbered = list(enumerate(data.lines, start=1))
    pages = page_count(len(numbered))
    for page in range(pages):
        _heading(canvas, data, page + 1, pages)
        below = _table(canvas, numbered[page * ROWS_PER_PAGE : (page + 1) * ROWS_PER_PAGE])
        if page == pages - 1:
            _totals(canvas, data, below)
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()
