"""Where everything sits on the 4x6 label, in points from the top-left corner.

One layout feeds both renderers: label.py draws it into a PDF, zpl.py converts it to ZPL
dots, so the two formats show the same lines in the same places.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cloud_sync.carriers.documents import fonts
from cloud_sync.carriers.documents.model import LabelData, Party, format_weight
from cloud_sync.carriers.documents.symbols import LABEL_WIDTH_PT, MARGIN_PT, ROOM_PT

RIGHT = LABEL_WIDTH_PT - MARGIN_PT
BAR_TOP_PT = 230
BAR_HEIGHT_PT = 50
QR_SIZE_PT = 108
QR_TOP_PT = 310
LEFT_COLUMN_PT = ROOM_PT - QR_SIZE_PT - 6
CAPTION_PT = 6.5
# Line pitch as a multiple of the font size: room for descenders without gaps.
LEADING = 1.18

Align = Literal["left", "right", "centre"]


@dataclass(frozen=True, slots=True)
class Text:
    """One line of already fitted text; ``x`` is its left, right or centre per ``align``."""

    x: float
    baseline: float
    text: str
    size: float
    align: Align = "left"


@dataclass(frozen=True, slots=True)
class Rule:
    """A horizontal line across the printable width."""

    top: float


@dataclass(frozen=True, slots=True)
class Barcode:
    """The tracking number's Code128, centred horizontally."""

    top: float
    height: float
    value: str


@dataclass(frozen=True, slots=True)
class QrCode:
    """The job URL's QR code, a square of ``size`` points."""

    left: float
    top: float
    size: float
    value: str


Item = Text | Rule | Barcode | QrCode


@dataclass(frozen=True, slots=True)
class Block:
    """How one party is printed: caption, sizes and line limits of name and street."""

    caption: str
    top: float
    name_size: float
    name_lines: int
    text_size: float
    street_lines: int


FROM = Block("FROM", 37, 8, 1, 8, 2)
TO = Block("TO", 99, 12, 2, 11, 3)


def _lines(items: list[Item], x: float, top: float, lines: list[str], size: float) -> float:
    """Append ``lines`` from baseline ``top`` down; return the next baseline."""
    for line in lines:
        items.append(Text(x, top, line, size))
        top += size * LEADING
    return top


def _party(items: list[Item], party: Party, block: Block) -> None:
    """Caption, name, street, locality and phone, each wrapped or cut to its line limit."""
    top = _lines(items, MARGIN_PT, block.top, [block.caption], CAPTION_PT)
    top += block.name_size + 1 - CAPTION_PT * LEADING
    name = fonts.wrap(party.name, block.name_size, ROOM_PT, block.name_lines)
    top = _lines(items, MARGIN_PT, top, name, block.name_size)
    size = block.text_size
    top = _lines(
        items, MARGIN_PT, top, fonts.wrap(party.street, size, ROOM_PT, block.street_lines), size
    )
    top = _lines(items, MARGIN_PT, top, [fonts.fit(party.locality, size, ROOM_PT)], size)
    if party.phone:
        items.append(
            Text(MARGIN_PT, top, fonts.fit(f"Tel. {party.phone}", size - 2, ROOM_PT), size - 2)
        )


def _service(items: list[Item], data: LabelData) -> None:
    pieces = f"{format_weight(data.weight_g)}  {data.parcel_number}/{data.parcel_count}"
    items.append(Text(RIGHT, 216, pieces, 11, "right"))
    room = ROOM_PT - fonts.width(pieces, 11) - 8
    items.append(Text(MARGIN_PT, 216, fonts.fit(data.service, 13, room), 13))


def _footer(items: list[Item], data: LabelData) -> None:
    top = _lines(items, MARGIN_PT, 318, ["TASK"], CAPTION_PT)
    top = _lines(items, MARGIN_PT, top + 2, fonts.wrap(data.task_id, 8, LEFT_COLUMN_PT, 3), 8)
    top = _lines(items, MARGIN_PT, max(top, 356), ["JOB"], CAPTION_PT)
    _lines(
        items, MARGIN_PT, top, fonts.wrap(data.job_url, CAPTION_PT, LEFT_COLUMN_PT, 5), CAPTION_PT
    )


def layout(data: LabelData) -> list[Item]:
    """Every line, rule and symbol of the label, top to bottom."""
    items: list[Item] = [
        Text(MARGIN_PT, 22, fonts.fit(data.provider_code, 10, 170), 10),
        Text(RIGHT, 22, data.ship_date.isoformat(), 10, "right"),
        Rule(28),
    ]
    _party(items, data.sender, FROM)
    items.append(Rule(90))
    _party(items, data.recipient, TO)
    items.append(Rule(198))
    _service(items, data)
    items.append(Rule(224))
    items.append(Barcode(BAR_TOP_PT, BAR_HEIGHT_PT, data.tracking_number))
    items.append(Text(LABEL_WIDTH_PT / 2, 294, data.tracking_number, 11, "centre"))
    items.append(Rule(302))
    items.append(QrCode(RIGHT - QR_SIZE_PT, QR_TOP_PT, QR_SIZE_PT, data.job_url))
    _footer(items, data)
    return items
