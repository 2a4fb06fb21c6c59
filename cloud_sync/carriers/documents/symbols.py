"""Label geometry shared by the PDF and ZPL renderers, and the Code128 fit rule."""

from __future__ import annotations

from reportlab.graphics.barcode.code128 import Code128

POINTS_PER_INCH = 72
# A 4x6 inch thermal label, portrait.
LABEL_WIDTH_PT = 4 * POINTS_PER_INCH
LABEL_HEIGHT_PT = 6 * POINTS_PER_INCH
# Thermal printers cannot print to the edge; 1/6 inch keeps clear of the liner gap.
MARGIN_PT = 12
ROOM_PT = LABEL_WIDTH_PT - 2 * MARGIN_PT
# Zebra's standard head: 203 dpi (8 dots/mm), 812 x 1218 dots on a 4x6 label.
DOTS_PER_INCH = 203
LABEL_WIDTH_DOTS = 812
LABEL_HEIGHT_DOTS = 1218
# ISO/IEC 15417 asks for a quiet zone of 10 modules on each side of a Code128.
QUIET_MODULES = 10
# A bar narrower than 2 printer dots smears on a 203 dpi head and scanners miss it.
MIN_MODULE_DOTS = 2
MIN_MODULE_PT = MIN_MODULE_DOTS * POINTS_PER_INCH / DOTS_PER_INCH


def code128_modules(value: str) -> int:
    """Width of ``value``'s Code128 symbol in modules (start, data, check, stop; no quiet)."""
    width: float = Code128(value, barWidth=1, quiet=0).width
    return round(width)


def code128_fits(value: str) -> bool:
    """True if ``value``'s Code128 with quiet zones fits across the label at 2 dots a module."""
    modules = code128_modules(value) + 2 * QUIET_MODULES
    return modules * MIN_MODULE_PT <= ROOM_PT
