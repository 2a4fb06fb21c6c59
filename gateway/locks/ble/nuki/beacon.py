"""The Nuki's iBeacon advertisement: does it say the lock's state changed?"""

from __future__ import annotations

from bleak.backends.scanner import AdvertisementData

from . import codec

_APPLE = 0x004C
_BEACON_UUID = bytes.fromhex(codec.KEYTURNER_SERVICE.replace("-", ""))


def state_changed_beacon(advertisement: AdvertisementData) -> bool:
    """True when the lock's iBeacon frame has the state-changed bit (TX power bit 0) set."""
    frame = advertisement.manufacturer_data.get(_APPLE, b"")
    return len(frame) == 23 and frame[2:18] == _BEACON_UUID and bool(frame[22] & 0x01)
