"""Per-lock secrets (pairing keys, vendor tokens) encrypted at rest in the hub's state dir.

Each secret is a small JSON object sealed with AES-256-GCM under ``lock-credentials.key`` (raw
32 bytes, 0600, created on first use and never replaced), with the lock id and the kind as
associated data, so a file copied onto another lock's name or kind does not open.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import IdentityError
from ..keyfile import KEY_FILE_MODE, read_key_file, write_new_secret

KEY_FILE = "lock-credentials.key"
DIRECTORY = "credentials"
# File format version; the first byte of every credential file.
FORMAT = 1
NONCE_BYTES = 12
# Lock ids and kinds become file names: keep them to a safe alphabet.
_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class CredentialError(IdentityError):
    """A credential file cannot be read or opened (damaged, wrong key, wrong lock)."""


class CredentialStore:
    """Encrypted JSON secrets per (lock id, kind) in ``<state_dir>/credentials/``."""

    def __init__(self, directory: Path, key: bytes) -> None:
        self._directory = directory
        self._aead = AESGCM(key)

    @classmethod
    def open(cls, state_dir: Path) -> CredentialStore:
        """The store under ``state_dir``; creates its key (0600) on first use."""
        key_path = state_dir / KEY_FILE
        if not key_path.exists():
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_new_secret(key_path, secrets.token_bytes(32))
        directory = state_dir / DIRECTORY
        directory.mkdir(mode=0o700, exist_ok=True)
        return cls(directory, read_key_file(key_path))

    def load(self, lock_id: str, kind: str) -> dict[str, Any] | None:
        """The secret saved for ``lock_id``/``kind``, or None when there is none."""
        path = self._path(lock_id, kind)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        if len(blob) < 1 + NONCE_BYTES or blob[0] != FORMAT:
            raise CredentialError(f"credential file {path} is damaged; pair the lock again")
        try:
            plain = self._aead.decrypt(
                blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], _aad(lock_id, kind)
            )
        except InvalidTag:
            raise CredentialError(
                f"credential file {path} does not open with this hub's key; pair the lock again"
            ) from None
        value = json.loads(plain)
        if not isinstance(value, dict):
            raise CredentialError(f"credential file {path} is damaged; pair the lock again")
        return value

    def save(self, lock_id: str, kind: str, data: dict[str, Any]) -> None:
        """Seal ``data`` and replace the file atomically (0600, fsynced)."""
        path = self._path(lock_id, kind)
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, json.dumps(data).encode(), _aad(lock_id, kind))
        temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, KEY_FILE_MODE)
        with os.fdopen(fd, "wb") as file:
            file.write(bytes([FORMAT]) + nonce + sealed)
            file.flush()
            os.fsync(file.fileno())
        temp.replace(path)
        dir_fd = os.open(self._directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def delete(self, lock_id: str, kind: str) -> None:
        """Forget the secret; absent is not an error."""
        self._path(lock_id, kind).unlink(missing_ok=True)

    def _path(self, lock_id: str, kind: str) -> Path:
        for part in (lock_id, kind):
            if not _SAFE.match(part):
                raise ValueError(f"unsafe credential name part {part!r}")
        return self._directory / f"{lock_id}.{kind}.cred"


def _aad(lock_id: str, kind: str) -> bytes:
    return f"lockhub-credential-v1\0{lock_id}\0{kind}".encode()
