"""A 4x6 inch PDF shipping label: addresses, service, Code128 tracking barcode, QR of the job."""

from __future__ import annotations

import io

from reportlab.graphics.barcode.code128 import Code128
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.renderPDF import draw as draw_drawing
from reportlab.graphics.shapes import Drawing
from reportlab.pdfgen.canvas import Canvas

from cloud_sync.carriers.documents import fonts
from cloud_sync.carriers.documents.layout import Barcode, Item, QrCode, Rule, Text, layout
from cloud_sync.carriers.documents.model import LabelData
from cloud_sync.carriers.documents.pdf import new_canvas
from cloud_sync.carriers.documents.symbols import (
    LABEL_HEIGHT_PT,
    LABEL_WIDTH_PT,
    MARGIN_PT,
    QUIET_MODULES,
    ROOM_PT,
    code128_modules,
)

# Bars wider than 1 pt make short numbers needlessly wide; 1 pt is 2.8 dots at 203 dpi.
MAX_MODULE_PT = 1.0
# Error level M survives a scuffed label (15 % damage) and still fits a 256-byte URL.
QR_LEVEL = "M"
QR_QUIET_MODULES = 4
RULE_PT = 1


def module_pt(value: str) -> float:
    """Bar module width for ``value``: as wide as fits with quiet zones, at most 1 pt."""
    return min(MAX_MODULE_PT, ROOM_PT / (code128_modules(value) + 2 * QUIET_MODULES))


def _text(canvas: Canvas, item: Text) -> None:
    y = LABEL_HEIGHT_PT - item.baseline
    if item.align == "right":
        fonts.draw_right(canvas, item.x, y, item.text, item.size)
    elif item.align == "centre":
        fonts.draw_centred(canvas, item.x, y, item.text, item.size)
    else:
        fonts.draw(canvas, item.x, y, item.text, item.size)


def _barcode(canvas: Canvas, item: Barcode) -> None:
    module = module_pt(item.value)
    symbol = Code128(item.value, barWidth=module, barHeight=item.height, quiet=0)
    left = (LABEL_WIDTH_PT - code128_modules(item.value) * module) / 2
    symbol.drawOn(canvas, left, LABEL_HEIGHT_PT - item.top - item.height)


def _qr(canvas: Canvas, item: QrCode) -> None:
    widget = QrCodeWidget(
        item.value,
        barLevel=QR_LEVEL,
        barBorder=QR_QUIET_MODULES,
        barWidth=item.size,
        barHeight=item.size,
    )
    drawing = Drawing(item.size, item.size)
    drawing.add(widget)
    draw_drawing(drawing, canvas, item.left, LABEL_HEIGHT_PT - item.top - item.size)


def _draw(canvas: Canvas, item: Item) -> None:
    if isinstance(item, Text):
        _text(canvas, item)
    elif isinstance(item, Rule):
        canvas.setLineWidth(RULE_PT)
        y = LABEL_HEIGHT_PT - item.top
        canvas.line(MARGIN_PT, y, LABEL_WIDTH_PT - MARGIN_PT, y)
    elif isinstance(item, Barcode):
        _barcode(canvas, item)
    else:
        _qr(canvas, item)


def render_label_pdf(data: LabelData) -> bytes:
    """The label as a one-page 4x6 inch PDF; the same data gives the same bytes."""
    buffer = io.BytesIO()
    canvas = new_canvas(
        buffer, (LABEL_WIDTH_PT, LABEL_HEIGHT_PT), title=f"Label {data.tracking_number}"
    )
    for item in layout(data):
        _draw(canvas, item)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()
