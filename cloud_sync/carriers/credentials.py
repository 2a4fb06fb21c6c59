"""Partner credentials sealed with AES-256-GCM under a key ring (several keys, one active).

A sealed value is ``v1:<key id>:<nonce>:<ciphertext>`` (base64url, no padding): it names the
key that opens it, so old seals keep opening after a new key becomes active, and ``rotate``
re-seals every partner under the active key, after which old keys can be retired. The
associated data binds tenant, partner id and key id: a sealed value copied to another partner
or tenant does not open.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import CredentialError
from .settings import CarriersSection

VERSION = "v1"
AAD_PREFIX = b"lockhub/carrier-credentials/v1"
KEY_BYTES = 32  # AES-256
# 96-bit random nonces: NIST SP 800-38D's limit of 2^32 seals per key is far off.
NONCE_BYTES = 12
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise CredentialError("sealed credentials are not base64url") from exc


def generate_key() -> str:
    """A new random key, base64url, for a key file or ``LOCKHUB_CLOUD_CARRIERS__KEYS``."""
    return _b64(secrets.token_bytes(KEY_BYTES))


@dataclass(frozen=True)
class KeyRing:
    """Keys by id; ``active`` seals, every key opens what it sealed."""

    keys: Mapping[str, bytes] = field(repr=False)
    active: str

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise CredentialError(f"active key {self.active!r} is not in the key ring")
        for kid, key in self.keys.items():
            if not _KEY_ID.fullmatch(kid) or len(key) != KEY_BYTES:
                raise CredentialError(f"key {kid!r} must be a 1-64 character id and 32 bytes")

    @classmethod
    def parse(cls, text: str, active: str) -> KeyRing:
        """A ring from ``"k1:<b64>,k2:<b64>"``."""
        keys: dict[str, bytes] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            kid, sep, encoded = item.partition(":")
            if not sep:
                raise CredentialError("keys must be written id:base64url, separated by commas")
            keys[kid] = _unb64(encoded)
        return cls(keys, active)

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """A ring from a TOML file: ``active = "id"`` and a ``[keys]`` table."""
        try:
            table = tomllib.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise CredentialError(f"cannot read the key file {path}: {type(exc).__name__}") from exc
        keys, active = table.get("keys"), table.get("active")
        if not isinstance(keys, dict) or not isinstance(active, str):
            raise CredentialError(f'{path} needs active = "id" and a [keys] table')
        return cls({str(kid): _unb64(str(value)) for kid, value in keys.items()}, active)

    @classmethod
    def from_section(cls, section: CarriersSection) -> KeyRing:
        """The ring the ``[carriers]`` section names (file, or keys from config/environment)."""
        if section.key_file is not None:
            return cls.load(section.key_file)
        if section.keys is not None and section.active_key is not None:
            return cls.parse(section.keys.get_secret_value(), section.active_key)
        raise CredentialError("no carrier key ring: set [carriers] key_file or keys")

    def seal(self, secret: Mapping[str, str], *, tenant: str, partner_id: str) -> str:
        """Seal ``secret`` for this tenant's partner under the active key."""
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(dict(secret), sort_keys=True, separators=(",", ":")).encode("utf-8")
        sealed = AESGCM(self.keys[self.active]).encrypt(
            nonce, plain, _aad(tenant, partner_id, self.active)
        )
        return ":".join((VERSION, self.active, _b64(nonce), _b64(sealed)))

    def open(self, sealed: str, *, tenant: str, partner_id: str) -> dict[str, str]:
        """The secret sealed for this tenant's partner; CredentialError for anything else."""
        kid, nonce, body = _split(sealed)
        key = self.keys.get(kid)
        if key is None:
            raise CredentialError(f"sealed under key {kid!r}, which the key ring lacks")
        try:
            plain = AESGCM(key).decrypt(nonce, body, _aad(tenant, partner_id, kid))
        except InvalidTag as exc:
            raise CredentialError("sealed credentials do not open for this partner") from exc
        value = json.loads(plain)
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise CredentialError("sealed credentials are not a string map")
        return {str(name): str(item) for name, item in value.items()}

    def reseal(self, sealed: str, *, tenant: str, partner_id: str) -> str | None:
        """The same secret sealed under the active key; None if it already is."""
        if key_id(sealed) == self.active:
            return None
        secret = self.open(sealed, tenant=tenant, partner_id=partner_id)
        return self.seal(secret, tenant=tenant, partner_id=partner_id)


def key_id(sealed: str) -> str:
    """The id of the key that sealed ``sealed``."""
    return _split(sealed)[0]


def _split(sealed: str) -> tuple[str, bytes, bytes]:
    parts = sealed.split(":")
    if len(parts) != 4 or parts[0] != VERSION:
        raise CredentialError("not a v1 sealed credential")
    return parts[1], _unb64(parts[2]), _unb64(parts[3])


def _aad(tenant: str, partner_id: str, kid: str) -> bytes:
    return b"\x00".join((AAD_PREFIX, tenant.encode(), partner_id.encode(), kid.encode()))
