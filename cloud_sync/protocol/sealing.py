"""Courier codes sealed to a hub with HPKE (RFC 9180 single-shot base mode)."""

from __future__ import annotations

import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .b64 import b64url_decode, b64url_encode
from .commands import SEALED_CODE_MAX_BYTES, SEALED_CODE_MIN_BYTES
from .errors import MalformedError, SealError
from .fields import IDENT_PATTERN

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
# Binds a sealed code to its window, so it cannot be moved to another window on the same hub.
INFO_PREFIX = b"lockhub/v1 code|"
ENC_BYTES = 32  # X25519 public key
TAG_BYTES = 16  # Poly1305
# Keypad codes: what lock keypads accept (Nuki 6 digits, Yale up to 8, Schlage 4-8) and humans type.
MIN_CODE_DIGITS = 6
MAX_CODE_DIGITS = 10
# Tokens come from apps and QR codes: 16 base64url characters carry 96 bits.
MIN_TOKEN_LENGTH = 16
MAX_TOKEN_LENGTH = 128
_DIGITS = re.compile(rf"[0-9]{{{MIN_CODE_DIGITS},{MAX_CODE_DIGITS}}}")
_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{MIN_TOKEN_LENGTH},{MAX_TOKEN_LENGTH}}}")
_WINDOW_ID = re.compile(IDENT_PATTERN.removeprefix("^").removesuffix("$"))


def check_code(code: str) -> str:
    """Return ``code`` if it is 6..10 ASCII digits or a 16..128 character base64url token."""
    if not isinstance(code, str) or not (_DIGITS.fullmatch(code) or _TOKEN.fullmatch(code)):
        raise MalformedError("a code is 6..10 digits or a 16..128 character base64url token")
    return code


def _info(window_id: str) -> bytes:
    if not isinstance(window_id, str) or not _WINDOW_ID.fullmatch(window_id):
        raise MalformedError("invalid window_id")
    return INFO_PREFIX + window_id.encode("ascii")


def seal_code(code: str, window_id: str, public_key: X25519PublicKey) -> str:
    """Seal ``code`` for ``window_id`` to the hub's key: base64url of enc || ciphertext."""
    info = _info(window_id)
    return b64url_encode(SUITE.encrypt(check_code(code).encode("ascii"), public_key, info=info))


def open_code(sealed: str, window_id: str, private_key: X25519PrivateKey) -> str:
    """Open a sealed code; SealError if it is not for this key and window or was altered."""
    info = _info(window_id)
    try:
        raw = b64url_decode(sealed)
    except MalformedError as exc:
        raise SealError("sealed code is not base64url") from exc
    if not SEALED_CODE_MIN_BYTES <= len(raw) <= SEALED_CODE_MAX_BYTES:
        raise SealError("sealed code has an impossible length")
    try:
        plain = SUITE.decrypt(raw, private_key, info=info)
    except (InvalidTag, ValueError) as exc:
        raise SealError("sealed code does not open with this key and window") from exc
    try:
        return check_code(plain.decode("ascii"))
    except UnicodeDecodeError as exc:
        raise MalformedError("sealed code is not ASCII") from exc
