"""Standard Webhooks signing (https://www.standardwebhooks.com): pure functions, no I/O.

``webhook-signature`` is ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``; several
signatures are separated by spaces, which is how a receiver keeps working while a secret is
rotated. Secrets are ``whsec_`` followed by the base64 of the key bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from .errors import WebhookSecretError

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
# The spec asks for 24 to 64 bytes; 32 matches the HMAC-SHA256 block strength.
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
SIGNATURE_VERSION = "v1"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


def generate_secret() -> str:
    """A fresh ``whsec_`` secret."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_`` secret; WebhookSecretError if it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookSecretError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookSecretError("a webhook secret is base64 after its prefix") from exc
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise WebhookSecretError(
            f"a webhook secret holds {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes"
        )
    return key


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    """What the spec signs: ``{id}.{timestamp}.{body}``."""
    return f"{msg_id}.{timestamp}.".encode() + body


def mac(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    """The raw HMAC-SHA256 of the signed content."""
    return hmac.new(key, signed_content(msg_id, timestamp, body), hashlib.sha256).digest()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature."""
    digest = base64.b64encode(mac(key, msg_id, timestamp, body)).decode("ascii")
    return f"{SIGNATURE_VERSION},{digest}"


def signature_header(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per key, space-separated."""
    if not keys:
        raise WebhookSecretError("signing needs at least one secret")
    return " ".join(sign(key, msg_id, timestamp, body) for key in keys)


def webhook_headers(
    secrets_: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt, signed with every secret."""
    keys = [decode_secret(secret) for secret in secrets_]
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature_header(keys, msg_id, timestamp, body),
    }
