"""JWS flattened JSON serialization (RFC 7515 section 7.2.2) signed with Ed25519 (RFC 9864)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import jsoncodec
from .b64 import b64url_decode, b64url_encode
from .errors import MalformedError, SignatureError, UnknownKeyError

ALG = "Ed25519"
# RFC 9864 deprecates the polymorphic "EdDSA"; older signers still send it.
ACCEPTED_ALGS = frozenset({"Ed25519", "EdDSA"})
ENVELOPE_MEMBERS = frozenset({"protected", "payload", "signature"})
ED25519_SIGNATURE_BYTES = 64
# One MQTT message carries a batch; the bounds keep a hostile or broken peer from making a
# hub or worker parse megabytes. 256 KiB holds hundreds of records and stays below the
# default message size limits of common brokers.
MAX_BATCH_BYTES = 256 * 1024
MAX_BATCH_ENVELOPES = 500
MAX_KID_LENGTH = 128

Envelope = dict[str, str]
Keys = Mapping[str, Ed25519PublicKey]


@dataclass(frozen=True, slots=True)
class Verified:
    """A verified envelope: who signed it and the exact payload bytes."""

    kid: str
    alg: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Signer:
    """A private signing key and the kid that names it (a hub_id or a cloud key id)."""

    kid: str
    key: Ed25519PrivateKey

    def sign(self, payload: bytes) -> Envelope:
        """Sign ``payload`` under this signer's kid."""
        return sign(payload, self.key, self.kid)


def protected_header(kid: str) -> str:
    """Return the base64url protected header for ``kid``."""
    return b64url_encode(jsoncodec.dumps({"alg": ALG, "kid": kid}))


def sign_parts(protected: str, payload: bytes, key: Ed25519PrivateKey) -> tuple[str, str, str]:
    """Sign ``payload`` under an encoded protected header; return the three base64url parts."""
    encoded_payload = b64url_encode(payload)
    signature = key.sign(f"{protected}.{encoded_payload}".encode("ascii"))
    return protected, encoded_payload, b64url_encode(signature)


def sign(payload: bytes, key: Ed25519PrivateKey, kid: str) -> Envelope:
    """Sign ``payload`` and return the flattened JWS as a dict."""
    protected, encoded_payload, signature = sign_parts(protected_header(kid), payload, key)
    return {"protected": protected, "payload": encoded_payload, "signature": signature}


def _string_member(envelope: Mapping[str, Any], name: str) -> str:
    value = envelope.get(name)
    if not isinstance(value, str):
        raise MalformedError(f"envelope member {name!r} must be a string")
    return value


def parse_header(protected: str) -> tuple[str, str, dict[str, Any]]:
    """Decode a protected header, check alg, kid and extensions; return alg, kid, all members."""
    header = jsoncodec.loads(b64url_decode(protected))
    if not isinstance(header, dict):
        raise MalformedError("protected header is not a JSON object")
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in ACCEPTED_ALGS:
        raise SignatureError(f"unsupported alg {alg!r}")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
        raise MalformedError("protected header needs a kid string")
    if "crit" in header or "b64" in header:
        # RFC 7515 4.1.11: we understand no extensions, so we must refuse them.
        raise SignatureError("critical header extensions are not supported")
    return str(alg), kid, header


def verify_parts(
    protected: str, encoded_payload: str, encoded_signature: str, kid: str, keys: Keys
) -> bytes:
    """Check the signature over ``protected.payload`` by trusted key ``kid``; return the payload."""
    signature = b64url_decode(encoded_signature)
    payload = b64url_decode(encoded_payload)
    key = keys.get(kid)
    if key is None:
        raise UnknownKeyError(kid)
    if len(signature) != ED25519_SIGNATURE_BYTES:
        raise SignatureError("Ed25519 signature must be 64 bytes")
    try:
        key.verify(signature, f"{protected}.{encoded_payload}".encode("ascii"))
    except InvalidSignature as exc:
        raise SignatureError(f"signature does not verify for kid {kid!r}") from exc
    return payload


def verify(envelope: object, keys: Keys) -> Verified:
    """Verify a flattened JWS against the trusted ``keys`` by kid."""
    if not isinstance(envelope, dict):
        raise MalformedError("envelope is not a JSON object")
    if set(envelope) != ENVELOPE_MEMBERS:
        raise MalformedError("envelope must have exactly protected, payload and signature")
    protected = _string_member(envelope, "protected")
    encoded_payload = _string_member(envelope, "payload")
    alg, kid, _ = parse_header(protected)
    signature = _string_member(envelope, "signature")
    payload = verify_parts(protected, encoded_payload, signature, kid, keys)
    return Verified(kid=kid, alg=alg, payload=payload)


def encode_batch(envelopes: Sequence[Envelope]) -> bytes:
    """Serialise envelopes as the JSON array that one MQTT message carries."""
    return jsoncodec.dumps(list(envelopes))


def decode_batch(data: bytes) -> list[dict[str, Any]]:
    """Parse one MQTT message into its envelope objects (not yet verified)."""
    if len(data) > MAX_BATCH_BYTES:
        raise MalformedError(f"batch larger than {MAX_BATCH_BYTES} bytes")
    value = jsoncodec.loads(data)
    if not isinstance(value, list) or not value:
        raise MalformedError("a batch is a non-empty JSON array of envelopes")
    if len(value) > MAX_BATCH_ENVELOPES:
        raise MalformedError(f"batch holds more than {MAX_BATCH_ENVELOPES} envelopes")
    if not all(isinstance(item, dict) for item in value):
        raise MalformedError("every batch item must be an envelope object")
    return value
