"""The hub's keys in its state directory: created once, never overwritten, refused if exposed.

Each key file holds exactly 32 raw bytes: the Ed25519 private seed (``signing.key``), the X25519
private key (``sealing.key``) and the HMAC secret for code hashing (``code-hmac.key``). Raw bytes
keep one format for all three (an HMAC secret has no PEM form) and make a damaged file
detectable by its length. Files are mode 0600 in a 0700 directory.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloud_sync.protocol.keys import public_key_b64

from .errors import IdentityError, IdentityMissingError
from .keyfile import KEY_BYTES, read_key_file, write_new_secret

SIGNING_KEY_FILE = "signing.key"
SEALING_KEY_FILE = "sealing.key"
CODE_HMAC_FILE = "code-hmac.key"
KEY_FILES = (SIGNING_KEY_FILE, SEALING_KEY_FILE, CODE_HMAC_FILE)
STATE_DIR_MODE = 0o700


@dataclass(frozen=True, slots=True)
class HubKeys:
    """The hub's private keys and secret; the public halves as base64url raw bytes."""

    signing: Ed25519PrivateKey
    sealing: X25519PrivateKey
    code_secret: bytes

    @property
    def signing_public(self) -> str:
        """Base64url of the raw Ed25519 public key (the cloud verifies records with it)."""
        return public_key_b64(self.signing.public_key())

    @property
    def sealing_public(self) -> str:
        """Base64url of the raw X25519 public key (the cloud seals codes to it)."""
        return public_key_b64(self.sealing.public_key())


def init_identity(state_dir: Path) -> tuple[HubKeys, bool]:
    """Create the state dir and any absent key file; return the keys and whether any was made."""
    try:
        state_dir.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
        created = [_create_key_file(state_dir / name) for name in KEY_FILES]
    except OSError as exc:
        raise IdentityError(f"cannot create hub keys in {state_dir}: {exc.strerror}") from exc
    return load_identity(state_dir), any(created)


def load_identity(state_dir: Path) -> HubKeys:
    """Load the hub's keys; raise IdentityMissingError or IdentityError saying what to do."""
    missing = [name for name in KEY_FILES if not (state_dir / name).exists()]
    if missing:
        raise IdentityMissingError(
            f"no hub keys in {state_dir} ({', '.join(missing)} missing); "
            "run `lockhub gateway init --config FILE` first"
        )
    signing, sealing, secret = (read_key_file(state_dir / name) for name in KEY_FILES)
    return HubKeys(
        signing=Ed25519PrivateKey.from_private_bytes(signing),
        sealing=X25519PrivateKey.from_private_bytes(sealing),
        code_secret=secret,
    )


def _create_key_file(path: Path) -> bool:
    """Write fresh random key material to ``path`` unless it exists; True if written."""
    if path.exists():
        return False
    # X25519 and Ed25519 private keys, and the HMAC secret, are all 32 uniformly random bytes.
    return write_new_secret(path, secrets.token_bytes(KEY_BYTES))
