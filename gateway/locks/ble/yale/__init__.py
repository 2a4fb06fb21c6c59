"""Yale / August locks over BLE through yalexs-ble, with the offline key and slot of the lock.

``build`` and ``pair`` are the registry's entry points. Keypad codes are always valid on these
locks: the hub adds them when a window opens and clears them when it ends
(gateway/access/provisioning.py), in a slot range reserved for the hub.
"""

from __future__ import annotations

from .driver import YaleBleDriver, build
from .options import CREDENTIAL_KIND, OfflineCredentials, YaleBleOptions
from .pairing import pair

__all__ = [
    "CREDENTIAL_KIND",
    "OfflineCredentials",
    "YaleBleDriver",
    "YaleBleOptions",
    "build",
    "pair",
]
