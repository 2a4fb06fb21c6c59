"""Yale / August locks through the vendor cloud (yalexs): the ``yale_cloud`` driver and pairing.

``build`` and ``pair`` are the registry's entry points; ``fetch_offline_key`` is for the Yale
BLE driver's pairing (it needs the lock's offline key and slot once).
"""

from __future__ import annotations

from .cloud import (
    YaleCloudAuthError,
    YaleCloudError,
    YaleCloudJammedError,
    YaleCloudProtocolError,
    YaleCloudRefusedError,
    YaleCloudUnreachableError,
)
from .driver import YaleCloudLock, YaleCloudOptions, build
from .pairing import OfflineKey, fetch_offline_key, pair

__all__ = [
    "OfflineKey",
    "YaleCloudAuthError",
    "YaleCloudError",
    "YaleCloudJammedError",
    "YaleCloudLock",
    "YaleCloudOptions",
    "YaleCloudProtocolError",
    "YaleCloudRefusedError",
    "YaleCloudUnreachableError",
    "build",
    "fetch_offline_key",
    "pair",
]
