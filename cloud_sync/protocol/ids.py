"""ULIDs: 48-bit millisecond time and 80 random bits in Crockford base32 (26 characters)."""

from __future__ import annotations

import re
import secrets
import time

from .errors import MalformedError

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_PATTERN = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")


def new_ulid(now_ms: int | None = None) -> str:
    """Return a new ULID for ``now_ms`` (default: the wall clock)."""
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    value = (millis & ((1 << 48) - 1)) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def check_ulid(text: str) -> str:
    """Return ``text`` if it is a canonical ULID, else raise MalformedError."""
    if not isinstance(text, str) or not ULID_PATTERN.fullmatch(text):
        raise MalformedError("not a ULID")
    return text
