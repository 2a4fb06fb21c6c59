"""The same 4x6 label as ZPL II for Zebra printers at 203 dpi (812 x 1218 dots).

Text is UTF-8 (``^CI28``); any ``^``, ``~`` or ``\\`` in field data is written as a hex
escape under ``^FH\\`` so no user text can start a ZPL command. Built-in font 0 prints Latin
text; pass ``unicode_font`` (a TrueType font stored on the printer, e.g. ``E:ANMDJ.TTF`` from
Zebra's Asian font kit) to print CJK names.
"""

from __future__ import annotations

import re

from reportlab.graphics.barcode import qrencoder

from cloud_sync.carriers.documents import fonts
from cloud_sync.carriers.documents.errors import DocumentError
from cloud_sync.carriers.documents.layout import Barcode, Item, QrCode, Rule, Text, layout
from cloud_sync.carriers.documents.model import LabelData
from cloud_sync.carriers.documents.symbols import (
    DOTS_PER_INCH,
    LABEL_HEIGHT_DOTS,
    LABEL_WIDTH_DOTS,
    MARGIN_PT,
    MIN_MODULE_DOTS,
    POINTS_PER_INCH,
    QUIET_MODULES,
    ROOM_PT,
    code128_modules,
)

# 3-dot bars when they fit: wider bars tolerate a worn print head better.
PREFERRED_MODULE_DOTS = 3
# ZPL caps ^BQ magnification at 10 for 203 dpi heads.
MAX_QR_MAGNIFICATION = 10
QR_QUIET_MODULES = 4
RULE_DOTS = 3
ESCAPE = "\\"
_ESCAPES = {ch: f"{ESCAPE}{ord(ch):02X}" for ch in (ESCAPE, "^", "~")}
# No IANA type exists for ZPL; application/zpl is what print servers and Labelary accept.
CONTENT_TYPE = "application/zpl"
# A font on the printer: drive letter, colon, an 8.3-style name (ZPL's ^CW syntax).
FONT_RE = re.compile(r"[A-Z]:[A-Z0-9_-]{1,16}\.(TTF|TTE|FNT)")


def dots(points: float) -> int:
    """Points (1/72 inch) as 203 dpi printer dots."""
    return round(points * DOTS_PER_INCH / POINTS_PER_INCH)


def field_data(text: str) -> str:
    """``^FD...^FS`` for ``text``, preceded by ``^FH`` and hex-escaped if it needs it."""
    escaped = "".join(_ESCAPES.get(ch, ch) for ch in text)
    prefix = f"^FH{ESCAPE}" if escaped != text else ""
    return f"{prefix}^FD{escaped}^FS"


def _text(item: Text, font: str) -> str:
    x = item.x
    if item.align == "right":
        x -= fonts.width(item.text, item.size)
    elif item.align == "centre":
        x -= fonts.width(item.text, item.size) / 2
    height = dots(item.size)
    return f"^FT{dots(x)},{dots(item.baseline)}^A{font}N,{height},{height}{field_data(item.text)}"


def _barcode(item: Barcode) -> str:
    modules = code128_modules(item.value)
    room = dots(ROOM_PT)
    module = PREFERRED_MODULE_DOTS
    if (modules + 2 * QUIET_MODULES) * module > room:
        module = MIN_MODULE_DOTS
    left = (LABEL_WIDTH_DOTS - modules * module) // 2
    return (
        f"^FO{left},{dots(item.top)}^BY{module}^BCN,{dots(item.height)},N,N,N,A"
        f"{field_data(item.value)}"
    )


def qr_modules(value: str) -> int:
    """Side of ``value``'s QR symbol (error level M) in modules, quiet zone excluded."""
    code = qrencoder.QRCode(None, qrencoder.QRErrorCorrectLevel.M)
    code.addData(value)
    code.make()
    # The stubs type the attribute, not its untyped getter.
    return int(code.moduleCount)


def _qr(item: QrCode) -> str:
    modules = qr_modules(item.value)
    magnification = min(MAX_QR_MAGNIFICATION, dots(item.size) // (modules + 2 * QR_QUIET_MODULES))
    offset = QR_QUIET_MODULES * magnification
    # "MA,": error level M, automatic data mode; the URL follows the comma.
    return (
        f"^FO{dots(item.left) + offset},{dots(item.top) + offset}^BQN,2,{magnification}"
        f"{field_data('MA,' + item.value)}"
    )


def _command(item: Item, font: str) -> str:
    if isinstance(item, Text):
        return _text(item, font)
    if isinstance(item, Rule):
        width = dots(ROOM_PT)
        return f"^FO{dots(MARGIN_PT)},{dots(item.top)}^GB{width},{RULE_DOTS},{RULE_DOTS}^FS"
    if isinstance(item, Barcode):
        return _barcode(item)
    return _qr(item)


def render_label_zpl(data: LabelData, *, unicode_font: str | None = None) -> bytes:
    """The label as one ZPL II format (``^XA`` ... ``^XZ``), UTF-8 encoded."""
    head = ["^XA", "^CI28", f"^PW{LABEL_WIDTH_DOTS}", f"^LL{LABEL_HEIGHT_DOTS}", "^LH0,0"]
    font = "0"
    if unicode_font is not None:
        if not FONT_RE.fullmatch(unicode_font):
            raise DocumentError("unicode_font", "must name a printer font such as E:ANMDJ.TTF")
        head.append(f"^CW1,{unicode_font}")
        font = "1"
    body = [_command(item, font) for item in layout(data)]
    return ("\n".join([*head, *body, "^PQ1", "^XZ"]) + "\n").encode("utf-8")
