"""The cloud's command-signing key: one Ed25519 key in state_dir, made once, never replaced.

The file ``command-signing.key`` holds the 32 raw bytes of the Ed25519 private seed, mode 0600,
in a 0700 directory; the same format the hub uses for its keys.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.protocol.envelope import Signer
from cloud_sync.protocol.keys import public_key_b64

SEED_BYTES = 32
SIGNING_KEY_FILE = "command-signing.key"
STATE_DIR_MODE = 0o700
KEY_FILE_MODE = 0o600
# Any permission bit for group or others exposes the key.
EXPOSING_BITS = 0o077


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
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise IdentityError(f"cannot read key file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as file:
        mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
        if mode & EXPOSING_BITS:
            raise IdentityError(f"key file {path} has mode {mode:04o}; run `chmod 600 {path}`")
        seed = file.read(SEED_BYTES + 1)
    if len(seed) != SEED_BYTES:
        raise IdentityError(f"key file {path} is damaged; restore it from a backup")
    return CloudKeys(kid=kid, signing=Ed25519PrivateKey.from_private_bytes(seed))


def write_new_secret(path: Path, seed: bytes) -> bool:
    """Atomically create ``path`` (0600) holding ``seed``; False if it already existed."""
    # Written under a temporary name, then hard-linked: link() fails rather than replace a key
    # that a concurrent init wrote first, and no reader ever sees a half-written file.
    temp = path.parent / f".{SIGNING_KEY_FILE}.{secrets.token_hex(8)}"
    with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_FILE_MODE), "wb") as out:
        out.write(seed)
        out.flush()
        os.fsync(out.fileno())
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        temp.unlink()
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True
