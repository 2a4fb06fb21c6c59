"""Verifying webhooks *in* from vendors: an HMAC over the raw body, compared in constant time.

A ``Scheme`` says where a sender puts its signature (and its id and timestamp, if any), what
it signs and how it writes the MAC. ``STANDARD_WEBHOOKS`` is the Standard Webhooks scheme;
a vendor with its own header (Uber Direct signs the body alone, hex, in one header) builds
its own ``Scheme`` and calls the same ``verify``. Always verify the bytes as received: a
re-serialized JSON body would not match.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from . import signing
from .errors import WebhookVerificationError

# The spec's tolerance: enough for clock skew and a slow network, short enough that a
# captured request cannot be replayed hours later.
DEFAULT_TOLERANCE = timedelta(minutes=5)
# A signature header is a few hundred bytes at most; a longer one is not worth parsing.
MAX_SIGNATURE_HEADER = 4096

Signed = Callable[[str | None, str | None, bytes], bytes]
Split = Callable[[str], list[str]]


def body_only(_msg_id: str | None, _timestamp: str | None, body: bytes) -> bytes:
    """Signed content of senders that sign the raw body alone."""
    return body


def standard_content(msg_id: str | None, timestamp: str | None, body: bytes) -> bytes:
    """Standard Webhooks: ``{id}.{timestamp}.{body}``."""
    return f"{msg_id}.{timestamp}.".encode() + body


def single(value: str) -> list[str]:
    """A header holding one bare signature."""
    return [value.strip()]


def versioned_v1(value: str) -> list[str]:
    """Standard Webhooks: space-separated ``v1,<sig>``; other versions are skipped."""
    found = []
    for item in value.split(" "):
        version, _, signature = item.partition(",")
        if version == signing.SIGNATURE_VERSION and signature:
            found.append(signature)
    return found


@dataclass(frozen=True, slots=True)
class Scheme:
    """How one sender signs its webhooks."""

    signature_header: str
    encoding: Literal["hex", "base64"] = "hex"
    id_header: str | None = None
    timestamp_header: str | None = None
    signed: Signed = body_only
    split: Split = single
    tolerance: timedelta = DEFAULT_TOLERANCE


STANDARD_WEBHOOKS = Scheme(
    signature_header=signing.SIGNATURE_HEADER,
    encoding="base64",
    id_header=signing.ID_HEADER,
    timestamp_header=signing.TIMESTAMP_HEADER,
    signed=standard_content,
    split=versioned_v1,
)


def _header(headers: Mapping[str, str], name: str) -> str:
    lowered = {key.lower(): value for key, value in headers.items()}
    value = lowered.get(name.lower())
    if not value:
        raise WebhookVerificationError("missing_header")
    return value


def _decode(signature: str, encoding: Literal["hex", "base64"]) -> bytes | None:
    try:
        if encoding == "hex":
            return bytes.fromhex(signature)
        return base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error):
        return None


def check_timestamp(value: str, now: datetime, tolerance: timedelta) -> None:
    """Refuse a Unix-seconds timestamp further than ``tolerance`` from ``now``."""
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        raise WebhookVerificationError("bad_timestamp")
    skew = int(value) - now.timestamp()
    if skew < -tolerance.total_seconds():
        raise WebhookVerificationError("too_old")
    if skew > tolerance.total_seconds():
        raise WebhookVerificationError("too_new")


def verify(
    scheme: Scheme,
    keys: Sequence[bytes],
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: datetime,
) -> None:
    """Return if one of ``keys`` signed ``body`` as ``scheme`` says; else raise
    WebhookVerificationError. Every candidate is compared in constant time."""
    provided = _header(headers, scheme.signature_header)
    if len(provided) > MAX_SIGNATURE_HEADER:
        raise WebhookVerificationError("bad_signature")
    msg_id = None if scheme.id_header is None else _header(headers, scheme.id_header)
    timestamp = None
    if scheme.timestamp_header is not None:
        timestamp = _header(headers, scheme.timestamp_header)
        check_timestamp(timestamp, now, scheme.tolerance)
    content = scheme.signed(msg_id, timestamp, body)
    expected = [hmac.new(key, content, hashlib.sha256).digest() for key in keys]
    matched = False
    for candidate in scheme.split(provided):
        decoded = _decode(candidate, scheme.encoding)
        if decoded is None:
            continue
        for digest in expected:
            # No early exit: the time taken does not say which key or signature matched.
            matched |= hmac.compare_digest(digest, decoded)
    if not matched:
        raise WebhookVerificationError("bad_signature")


def verify_standard(
    secrets_: Sequence[str], body: bytes, headers: Mapping[str, str], *, now: datetime
) -> None:
    """Verify a Standard Webhooks request against any of ``secrets_`` (``whsec_...``)."""
    keys = [signing.decode_secret(secret) for secret in secrets_]
    verify(STANDARD_WEBHOOKS, keys, body, headers, now=now)
