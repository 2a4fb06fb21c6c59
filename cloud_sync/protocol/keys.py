"""Public keys on the wire and in configs: base64url of the raw 32 bytes."""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .b64 import b64url_decode, b64url_encode
from .envelope import MAX_KID_LENGTH
from .errors import MalformedError

RAW_KEY_BYTES = 32


def _raw(text: str, what: str) -> bytes:
    raw = b64url_decode(text)
    if len(raw) != RAW_KEY_BYTES:
        raise MalformedError(f"{what} key must be {RAW_KEY_BYTES} raw bytes")
    return raw


def load_ed25519_public(text: str) -> Ed25519PublicKey:
    """Load a base64url raw Ed25519 public key (a signing key); raise MalformedError."""
    try:
        return Ed25519PublicKey.from_public_bytes(_raw(text, "Ed25519"))
    except ValueError as exc:  # pragma: no cover - OpenSSL takes any 32 bytes today
        raise MalformedError("not an Ed25519 public key") from exc


def load_x25519_public(text: str) -> X25519PublicKey:
    """Load a base64url raw X25519 public key (a sealing key); raise MalformedError."""
    try:
        return X25519PublicKey.from_public_bytes(_raw(text, "X25519"))
    except ValueError as exc:  # pragma: no cover - OpenSSL takes any 32 bytes today
        raise MalformedError("not an X25519 public key") from exc


def public_key_b64(key: Ed25519PublicKey | X25519PublicKey) -> str:
    """The base64url raw form of a public key, as configs and ``identity`` print it."""
    return b64url_encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def load_command_keys(keys: Mapping[str, str]) -> dict[str, Ed25519PublicKey]:
    """Load ``{kid: base64url key}`` (the hub's ``[cloud] command_keys``); raise MalformedError."""
    loaded: dict[str, Ed25519PublicKey] = {}
    for kid, text in keys.items():
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH:
            raise MalformedError("a kid is 1..128 characters")
        try:
            loaded[kid] = load_ed25519_public(text)
        except MalformedError as exc:
            raise MalformedError(f"command key {kid!r}: {exc}") from exc
    return loaded
