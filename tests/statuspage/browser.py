"""Headless Chromium from the distribution, driven by its command line (no WebDriver needed)."""

from __future__ import annotations

import asyncio
import shutil
import struct
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from tests.infra.services import missing_service

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# A cold Chromium start with a fresh profile takes 1-3 s; 15 s covers a loaded CI box.
CHROMIUM_TIMEOUT = 15.0
# Virtual time lets the page's script fetch its data and render before the DOM is taken;
# it stops before the 5 s refresh timer fires a second time.
VIRTUAL_TIME_MS = 3000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Bytes per pixel of 8-bit colour types: greyscale, RGB, greyscale+alpha, RGBA.
BYTES_PER_PIXEL = {0: 1, 2: 3, 4: 2, 6: 4}
VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "wbr"}


def chromium() -> str:
    """The browser binary (fails under CI=true when there is none, skips elsewhere)."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    missing_service("chromium not found (apt-get install chromium)")
    raise AssertionError("unreachable")  # missing_service skips or fails


async def run_chromium(binary: str, profile: Path, *args: str) -> bytes:
    """Run headless Chromium with ``args`` and a throwaway profile; its stdout."""
    argv = [
        binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
        f"--virtual-time-budget={VIRTUAL_TIME_MS}", *args,
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CHROMIUM_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out


@dataclass(frozen=True)
class Png:
    """What a structural read of a PNG found."""

    width: int
    height: int
    filtered: bytes  # the decompressed image data (filter byte + scanline per row)
    compressed_size: int


def read_png(data: bytes) -> Png:
    """Check every chunk's CRC, the header and the image data's size; raise AssertionError."""
    assert data.startswith(PNG_SIGNATURE), "not a PNG"
    pos, chunks = len(PNG_SIGNATURE), []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1][0] == b"IEND"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, interlace) == (8, 0), "expected 8-bit, non-interlaced"
    compressed = b"".join(body for kind, body in chunks if kind == b"IDAT")
    filtered = zlib.decompress(compressed)
    assert len(filtered) == height * (1 + width * BYTES_PER_PIXEL[colour])
    return Png(width, height, filtered, len(compressed))


class DomTable(HTMLParser):
    """Text of ``data-field`` cells per ``data-lock-id`` row, and of elements by id."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str]] = {}
        self.by_id: dict[str, str] = {}
        self._row: str | None = None
        self._field: str | None = None
        self._ids: list[tuple[str, int]] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in VOID_ELEMENTS:
            return
        self._depth += 1
        if tag == "tr":
            self._row = found.get("data-lock-id")
            if self._row is not None:
                self.rows[self._row] = {}
        if found.get("data-field") and self._row is not None:
            self._field = found["data-field"]
        if found.get("id"):
            self._ids.append((str(found["id"]), self._depth))
            self.by_id.setdefault(str(found["id"]), "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._field = None
        if tag == "tr":
            self._row = None
        while self._ids and self._ids[-1][1] >= self._depth:
            self._ids.pop()
        self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._field is not None:
            cells = self.rows[self._row]
            cells[self._field] = (cells.get(self._field, "") + data).strip()
        for name, _ in self._ids:
            self.by_id[name] += data
