"""Secret files: exactly N raw bytes, mode 0600, created atomically and never replaced.

Shared by the hub's and the cloud's identities (the cloud may use this leaf module; the
gateway never imports cloud code beyond ``cloud_sync.protocol``).
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from .errors import IdentityError

KEY_BYTES = 32
KEY_FILE_MODE = 0o600
# Any permission bit for group or others exposes the key.
EXPOSING_BITS = 0o077


def read_key_file(path: Path, size: int = KEY_BYTES) -> bytes:
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
        data = file.read(size + 1)
    if len(data) != size:
        raise IdentityError(
            f"key file {path} is damaged (not {size} bytes); restore it from a backup"
        )
    return data


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
