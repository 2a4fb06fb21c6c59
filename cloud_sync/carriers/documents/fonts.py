"""Fonts for labels and manifests: measure, wrap, truncate and draw text in any script.

Latin, Greek and Cyrillic are drawn with an embedded TrueType font: DejaVu Sans when the
system has it, else Bitstream Vera, which ships inside reportlab. Chinese/Japanese and Korean
use reportlab's built-in CID fonts (STSong-Light, HYSMyeongJo-Medium); those are not embedded,
so the viewer or printer driver supplies the glyphs (Acrobat and most drivers do; text
extraction always works). Any other character is decomposed to a base letter the font has
("ṩ" -> "s") or printed as "?". Right-to-left scripts are drawn unshaped, in logical order.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import reportlab
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

# Preferred first: DejaVu covers Latin Extended, Greek and Cyrillic; Vera only Latin-1.
LATIN_FONT_FILES = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path(reportlab.__file__).parent / "fonts" / "Vera.ttf",
)
LATIN = "LockhubSans"
CHINESE = "STSong-Light"
KOREAN = "HYSMyeongJo-Medium"
ELLIPSIS = "\u2026"
# Hangul syllables and jamo go to the Korean CID font.
_KOREAN_RANGES = ((0x1100, 0x11FF), (0x3130, 0x318F), (0xAC00, 0xD7AF))
# CJK punctuation, kana, ideographs, compatibility ideographs and fullwidth forms (BMP only:
# the CID fonts' UCS-2 encodings cannot address other planes).
_CHINESE_RANGES = (
    (0x3000, 0x30FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0xFF00, 0xFFEF),
)


@dataclass(frozen=True, slots=True)
class Run:
    """A stretch of text drawn in one font."""

    font: str
    text: str


def latin_font_file(candidates: tuple[Path, ...] = LATIN_FONT_FILES) -> Path:
    """The first existing font file of ``candidates`` (the last one ships with reportlab)."""
    for path in candidates:
        if path.is_file():
            return path
    return candidates[-1]


@cache
def _latin_cmap() -> frozenset[int]:
    """Register the fonts once per process; return the code points the Latin font has."""
    font = TTFont(LATIN, str(latin_font_file()))
    pdfmetrics.registerFont(font)
    pdfmetrics.registerFont(UnicodeCIDFont(CHINESE))
    pdfmetrics.registerFont(UnicodeCIDFont(KOREAN))
    return frozenset(font.face.charToGlyph)


def _in(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= code <= high for low, high in ranges)


def _place(ch: str, cmap: frozenset[int]) -> Run:
    """The font and text that print ``ch``."""
    code = ord(ch)
    if code in cmap:
        return Run(LATIN, ch)
    if _in(code, _KOREAN_RANGES):
        return Run(KOREAN, ch)
    if _in(code, _CHINESE_RANGES):
        return Run(CHINESE, ch)
    if unicodedata.category(ch) in {"Cf", "Mn", "Me"}:
        return Run(LATIN, "")  # invisible formatting or a mark with no base: drop it
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if ord(c) in cmap)
    return Run(LATIN, base.strip() or "?")


def runs(text: str) -> list[Run]:
    """Split ``text`` into runs of one font each; unprintable characters replaced."""
    cmap = _latin_cmap()
    out: list[Run] = []
    for ch in unicodedata.normalize("NFC", " ".join(text.split())):
        run = _place(ch, cmap)
        if out and out[-1].font == run.font:
            out[-1] = Run(run.font, out[-1].text + run.text)
        elif run.text:
            out.append(run)
    return out


def printable(text: str) -> str:
    """``text`` as it will print: whitespace collapsed, unprintables replaced."""
    return "".join(run.text for run in runs(text))


def width(text: str, size: float) -> float:
    """Width in points of ``text`` at ``size``."""
    return float(sum(pdfmetrics.stringWidth(r.text, r.font, size) for r in runs(text)))


def _prefix(shown: str, size: float, room: float) -> str:
    """The longest prefix of printable ``shown`` at most ``room`` points wide."""
    cmap = _latin_cmap()
    used = 0.0
    for index, ch in enumerate(shown):
        run = _place(ch, cmap)
        used += pdfmetrics.stringWidth(run.text, run.font, size)
        if used > room:
            return shown[:index]
    return shown


def _cut(shown: str, size: float, room: float) -> str:
    """Printable ``shown`` shortened to end in an ellipsis within ``room`` points."""
    head = _prefix(shown, size, room - width(ELLIPSIS, size)).rstrip()
    return head + ELLIPSIS if head else ""


def fit(text: str, size: float, room: float) -> str:
    """``text`` as printed, cut with an ellipsis so it is at most ``room`` points wide."""
    shown = printable(text)
    return shown if width(shown, size) <= room else _cut(shown, size, room)


def _break_word(word: str, size: float, room: float) -> list[str]:
    """Cut a word wider than ``room`` into pieces that fit (CJK text has no spaces)."""
    pieces: list[str] = []
    while word:
        piece = _prefix(word, size, room) or word[0]
        pieces.append(piece)
        word = word[len(piece) :]
    return pieces


def wrap(text: str, size: float, room: float, max_lines: int) -> list[str]:
    """Word-wrap ``text`` into at most ``max_lines`` lines of ``room`` points; ellipsis if cut."""
    lines: list[str] = []
    for word in printable(text).split(" "):
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and width(candidate, size) <= room:
            lines[-1] = candidate
        else:
            lines.extend(_break_word(word, size, room))
        if len(lines) > max_lines:
            return [*lines[: max_lines - 1], _cut(lines[max_lines - 1] + " ", size, room)]
    return lines


def draw(canvas: Canvas, x: float, y: float, text: str, size: float) -> None:
    """Draw ``text`` (already fitted) with its baseline at ``(x, y)``."""
    for run in runs(text):
        canvas.setFont(run.font, size)
        canvas.drawString(x, y, run.text)
        x += pdfmetrics.stringWidth(run.text, run.font, size)


def draw_right(canvas: Canvas, right: float, y: float, text: str, size: float) -> None:
    """Draw ``text`` ending at ``right``."""
    draw(canvas, right - width(text, size), y, text, size)


def draw_centred(canvas: Canvas, centre: float, y: float, text: str, size: float) -> None:
    """Draw ``text`` centred on ``centre``."""
    draw(canvas, centre - width(text, size) / 2, y, text, size)
