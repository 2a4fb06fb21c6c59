"""What configures a ``yale_ble`` lock: its options, and the offline key pairing stores."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from cloud_sync.protocol.tomlconfig import Section

from ...driver import LockRefusedError

CREDENTIAL_KIND = "yale_ble"
# The slot index of an offline key travels in one byte.
MAX_KEY_SLOT = 255
MAX_CODE_SLOT = 0xFFFF
_MAC = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"
# Offline keys are AES keys: 16 bytes on the locks we know; yalexs-ble takes any AES size.
_HEX_KEY = re.compile(r"^(?:[0-9a-fA-F]{16}){2,4}$")


class YaleBleOptions(Section):
    """``options`` of a ``yale_ble`` lock (the offline key and slot come from pairing)."""

    address: str = Field(pattern=_MAC)
    serial: str | None = Field(default=None, min_length=7, max_length=32)
    has_keypad: bool = False
    # Keypad slots the hub may use; keep them clear of codes made in the Yale/August app.
    keypad_slot_first: int = Field(default=100, ge=1, le=MAX_CODE_SLOT)
    keypad_slot_count: int = Field(default=20, ge=1, le=250)
    cloud_api_base: str | None = None


@dataclass(frozen=True, slots=True)
class OfflineCredentials:
    """What pairing stores: the offline key (hex) and its slot, and the lock's serial/name."""

    key: str
    slot: int
    serial: str
    name: str

    @classmethod
    def checked(cls, key: str, slot: int, serial: str, name: str) -> OfflineCredentials:
        """Validated credentials; LockRefusedError naming what is wrong."""
        if not _HEX_KEY.match(key):
            raise LockRefusedError("an offline key is 32 hex digits (16 bytes)")
        if not 0 <= slot <= MAX_KEY_SLOT:
            raise LockRefusedError(f"an offline key slot is 0-{MAX_KEY_SLOT}")
        return cls(key.lower(), slot, serial, name)

    @classmethod
    def from_store(cls, data: dict[str, Any]) -> OfflineCredentials:
        """Credentials read back from the CredentialStore."""
        try:
            return cls.checked(str(data["key"]), int(data["slot"]), data["serial"], data["name"])
        except (KeyError, TypeError, ValueError):
            raise LockRefusedError("stored Yale credentials are damaged; pair again") from None

    def to_store(self) -> dict[str, Any]:
        """The JSON object the CredentialStore seals."""
        return {"key": self.key, "slot": self.slot, "serial": self.serial, "name": self.name}
