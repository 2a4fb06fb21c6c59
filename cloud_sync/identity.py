"""The cloud's command-signing key: one Ed25519 key in state_dir, made once, never replaced.

The file ``command-signing.key`` holds the 32 raw bytes of the Ed25519 private seed, mode 0600,
in a 0700 directory; the same format the hub uses for its keys.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.protocol.envelope import Signer
from cloud_sync.protocol.keys import public_key_b64
from gateway.errors import IdentityError as GatewayIdentityError
from gateway.keyfile import read_key_file, write_new_secret

SEED_BYTES = 32
SIGNING_KEY_FILE = "command-signing.key"
STATE_DIR_MODE = 0o700


class IdentityError(Exception):
    """The signing key is missing or unusable: the message says what to do."""


class IdentityMissingError(IdentityError):
    """No key yet: run ``lockhub cloud init``."""


@dataclass(frozen=True, slots=True)
class CloudKeys:
    """The cloud's command-signing key and the kid hubs know it by."""

    kid: str
    signing: Ed25519PrivateKey

    @property
    def signing_public(self) -> str:
        """Base64url of the raw Ed25519 public key, for hubs' ``[cloud] command_keys``."""
        return public_key_b64(self.signing.public_key())

    def signer(self) -> Signer:
        """A JWS signer for commands."""
        return Signer(kid=self.kid, key=self.signing)


def init_cloud_identity(state_dir: Path, kid: str) -> tuple[CloudKeys, bool]:
    """Create state_dir and the signing key if absent; return the key and whether it was made."""
    path = state_dir / SIGNING_KEY_FILE
    created = False
    try:
        state_dir.mkdir(mode=STATE_DIR_MODE, parents=True, exist_ok=True)
        if not path.exists():
            created = write_new_secret(path, secrets.token_bytes(SEED_BYTES))
    except OSError as exc:
        raise IdentityError(
            f"cannot create the signing key in {state_dir}: {exc.strerror}"
        ) from exc
    return load_cloud_identity(state_dir, kid), created


def load_cloud_identity(state_dir: Path, kid: str) -> CloudKeys:
    """Load the signing key; raise IdentityMissingError or IdentityError saying what to do."""
    path = state_dir / SIGNING_KEY_FILE
    if not path.exists():
        raise IdentityMissingError(
            f"no signing key at {path}; run `lockhub cloud init --config FILE` first"
        )
    try:
        seed = read_key_file(path, SEED_BYTES)
    except GatewayIdentityError as exc:
        raise IdentityError(str(exc)) from exc
    return CloudKeys(kid=kid, signing=Ed25519PrivateKey.from_private_bytes(seed))
