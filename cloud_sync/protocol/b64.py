"""Strict base64url without padding (RFC 7515 section 2)."""

from __future__ import annotations

import base64
import binascii
import re

from .errors import MalformedError

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url_encode(data: bytes) -> str:
    """Encode bytes as base64url with the padding stripped."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url; raise MalformedError for anything else."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise MalformedError("not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - regex already excludes these
        raise MalformedError("not unpadded base64url") from exc
    if b64url_encode(raw) != text:
        # Non-canonical trailing bits would let two strings name one value.
        raise MalformedError("non-canonical base64url")
    return raw
