"""The hub's keys in its state directory: created once, never overwritten, refused if exposed.

Each key file holds exactly 32 raw bytes: the Ed25519 private seed (``signing.key``), the X25519
private key (``sealing.key``) and the HMAC secret for code hashing (``code-hmac.key``). Raw bytes
keep one format for all three (an HMAC secret has no PEM form) and make a damaged file
detectable by its length. Files are mode 0600 in a 0700 directory.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloud_sync.protocol.keys import public_key_b64

from .errors import IdentityError, IdentityMissingError

KEY_BYTES = 32
SIGNING_KEY_FILE = "signing.key"
SEALING_KEY_FILE = "sealing.key"
CODE_HMAC_FILE = "code-hmac.key"
KEY_FILES = (SIGNING_KEY_FILE, SEALING_KEY_FILE, CODE_HMAC_FILE)
STATE_DIR_MODE = 0o700
KEY_FILE_MODE = 0o600
# Any permission bit for group or others exposes the key.
EXPOSING_BITS = 0o077


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


def read_key_file(path: Path) -> bytes:
    """Read a 32-byte key file that only its owner can read; raise IdentityError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise IdentityError(f"cannot read key file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as file:
        mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
        if mode & EXPOSING_BITS:
            raise IdentityError(
                f"key file {path} is readable by group or others (mode {mode:04o}); "
                f"run `chmod 600 {path}`"
            )
        data = file.read(KEY_BYTES + 1)
    if len(data) != KEY_BYTES:
        raise IdentityError(
            f"key file {path} is damaged (not {KEY_BYTES} bytes); restore it from a backup"
        )
    return data


def _create_key_file(path: Path) -> bool:
    """Write fresh random key material to ``path`` unless it exists; True if written."""
    if path.exists():
        return False
    # X25519 and Ed25519 private keys, and the HMAC secret, are all 32 uniformly random bytes.
    return write_new_secret(path, secrets.token_bytes(KEY_BYTES))


def write_new_secret(path: Path, data: bytes) -> bool:
    """Atomically create ``path`` (0600) holding ``data``; False if it already existed."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, KEY_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        # link() never replaces an existing file, unlike rename(): a concurrent init wins once.
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        temp.unlink()
    _fsync_dir(path.parent)
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
