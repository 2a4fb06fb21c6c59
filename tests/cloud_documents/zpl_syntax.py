"""A small ZPL II syntax checker: format brackets, known commands, balanced field blocks."""

from __future__ import annotations

import re

# Every command our labels may use; anything else is a mistake (or injected).
KNOWN = {"XA", "XZ", "CI", "PW", "LL", "LH", "CW", "FO", "FT", "A0", "A1", "GB", "BY", "BC",
         "BQ", "FH", "FD", "FS", "PQ"}  # fmt: skip
_COMMAND = re.compile(r"[\^~]([A-Z@][A-Z0-9@])")


class ZplSyntaxError(AssertionError):
    """The ZPL is not well formed."""


def _field_data(text: str, start: int) -> tuple[str, int]:
    """The raw data of the ^FD at ``start`` and the index just after its ^FS."""
    end = text.find("^FS", start)
    if end < 0:
        raise ZplSyntaxError(f"^FD at {start} has no ^FS")
    return text[start + 3 : end], end + 3


def check(zpl: bytes) -> list[tuple[str, str]]:
    """Parse ``zpl``; return (command, parameters or field data) pairs or raise ZplSyntaxError."""
    text = zpl.decode("utf-8").strip()
    if not text.startswith("^XA") or not text.endswith("^XZ"):
        raise ZplSyntaxError("a format starts with ^XA and ends with ^XZ")
    commands: list[tuple[str, str]] = []
    index, in_field = 0, False
    while index < len(text):
        if text[index] == "\n":
            index += 1
            continue
        match = _COMMAND.match(text, index)
        if match is None or match.group(1) not in KNOWN:
            raise ZplSyntaxError(f"unknown command at {index}: {text[index : index + 6]!r}")
        name = match.group(1)
        if name == "FD":
            if not in_field:
                raise ZplSyntaxError(f"^FD outside a field (no ^FO/^FT) at {index}")
            data, index = _field_data(text, index)
            if "^" in data or "~" in data:
                raise ZplSyntaxError(f"raw ^ or ~ in field data {data!r}")
            commands.append(("FD", data))
            in_field = False
            continue
        if name in {"FO", "FT"}:
            if in_field:
                raise ZplSyntaxError(f"field at {index} opened before the last one closed")
            in_field = True
        nxt = re.compile(r"[\^~\n]").search(text, match.end())
        stop = nxt.start() if nxt else len(text)
        commands.append((name, text[match.end() : stop]))
        if name == "FS":
            in_field = False
        index = stop
    if in_field:
        raise ZplSyntaxError("a field is never closed")
    if text.count("^XA") != 1:
        raise ZplSyntaxError("one label, one ^XA")
    return commands


def unescape(data: str, indicator: str = "\\") -> str:
    """Field data with its ^FH hex escapes decoded."""
    raw = data.encode("utf-8")
    out = bytearray()
    index = 0
    while index < len(raw):
        if raw[index : index + 1] == indicator.encode():
            out += bytes.fromhex(raw[index + 1 : index + 3].decode())
            index += 3
        else:
            out.append(raw[index])
            index += 1
    return out.decode("utf-8")
