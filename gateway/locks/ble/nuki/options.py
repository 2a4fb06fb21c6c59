"""What configures a ``nuki_ble`` lock: its options, its security PIN file, its stored pairing."""

from __future__ import annotations

import stat
from pathlib import Path

from pydantic import Field

from cloud_sync.protocol.tomlconfig import Section

from ....errors import ConfigError
from .errors import NukiPairingNeededError
from .session import Credentials

CREDENTIAL_KIND = "nuki_ble"
MAC_PATTERN = r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$"
_EXPOSING_BITS = 0o077


class NukiBleOptions(Section):
    """``options`` of a ``nuki_ble`` lock."""

    address: str = Field(pattern=MAC_PATTERN)
    # A 0600 file holding the lock's security PIN: needed for keypad codes and log reading.
    security_pin_file: Path | None = None
    # Our name in the lock's user list and log (32 bytes at most).
    app_name: str = Field(default="lockhub", min_length=1, max_length=32)
    # Unlock pulls the latch too (doors without a handle on the outside).
    unlatch: bool = False
    has_keypad: bool = True


def read_security_pin(path: Path, source: str, lock_id: str) -> int:
    """The PIN in ``path`` (digits, 0-65535, mode 0600); ConfigError naming the option."""
    where = f"{source}: locks[{lock_id}].options.security_pin_file"
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(source, [f"{where}: cannot read {path}: {exc.strerror}"]) from None
    if mode & _EXPOSING_BITS:
        raise ConfigError(source, [f"{where}: {path} is readable by others; chmod 600 it"])
    if not text.isdigit() or int(text) > 0xFFFF:
        raise ConfigError(source, [f"{where}: {path} must hold the PIN as digits (0-65535)"])
    return int(text)


def credentials_to_dict(creds: Credentials) -> dict[str, int | str]:
    return {
        "auth_id": creds.auth_id,
        "shared_key": creds.shared_key.hex(),
        "app_id": creds.app_id,
        "lock_public_key": creds.lock_public_key.hex(),
    }


def credentials_from_dict(data: dict[str, object]) -> Credentials:
    try:
        return Credentials(
            int(str(data["auth_id"])),
            bytes.fromhex(str(data["shared_key"])),
            int(str(data["app_id"])),
            bytes.fromhex(str(data["lock_public_key"])),
        )
    except (KeyError, ValueError):
        raise NukiPairingNeededError("stored Nuki credentials are damaged; pair again") from None
