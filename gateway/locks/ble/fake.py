"""A fake bleak backend: emulated peripherals in a fake radio environment, for tests and demos.

bleak hands every call to a backend (``BaseBleakClient`` / ``BaseBleakScanner``); this module
ships one whose "radio" is a :class:`FakeAir`. Lock emulators subclass :class:`FakePeripheral`
and speak their vendor's real byte protocol on its characteristics, so the drivers above run
unmodified: ``BleakClient(address, backend=air.client_backend)``. Libraries that build their
``BleakClient`` themselves (yalexs-ble) see the fake through :meth:`FakeAir.install`.

Fault knobs: a peripheral out of range, a link dropped mid-command, connects failing with
out-of-slots / timeout / not-found, and a latency on every write and notification.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Literal, cast
from unittest import mock

import bleak
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError

# The ATT MTU a BlueZ link reports (23) is what drivers must cope with.
FAKE_MTU = 23
ConnectFault = Literal["out_of_slots", "timeout", "not_found"]
# Out-of-slots as ESPHome proxies and BlueZ word it; bleak-retry-connector matches the text.
OUT_OF_SLOTS_MESSAGE = "No backend with an available connection slot"


class FakePeripheral:
    """One emulated BLE peripheral; subclass it and override ``handle_write``/``handle_read``."""

    def __init__(self, address: str, name: str, *, rssi: int = -60) -> None:
        self.address = address.upper()
        self.name = name
        self.rssi = rssi
        self.services: dict[str, dict[str, list[str]]] = {}
        self.manufacturer_data: dict[int, bytes] = {}
        self.service_data: dict[str, bytes] = {}
        self.service_uuids: list[str] = []
        self._air: FakeAir | None = None
        self._link: _FakeClient | None = None

    @property
    def connected(self) -> bool:
        """True while a central holds a link to this peripheral."""
        return self._link is not None

    async def handle_write(self, char_uuid: str, data: bytes) -> None:
        """A central wrote ``data`` to ``char_uuid``; override to act on it."""

    async def handle_read(self, char_uuid: str) -> bytes:
        """A central reads ``char_uuid``; override for readable characteristics."""
        raise BleakError(f"characteristic {char_uuid} is not readable")

    def notify(self, char_uuid: str, data: bytes) -> None:
        """Send a notification/indication to the connected central, if it subscribed."""
        if self._link is not None:
            self._link.deliver(char_uuid.lower(), bytes(data))

    def advertise(self) -> None:
        """Broadcast the current advertisement to every scanner in the air."""
        if self._air is not None:
            self._air.broadcast(self)

    def on_connect(self) -> None:
        """Hook: a central connected."""

    def on_disconnect(self) -> None:
        """Hook: the link went down (either side, or out of range)."""

    def advertisement(self) -> AdvertisementData:
        """The advertisement as bleak reports it."""
        return AdvertisementData(
            local_name=self.name,
            manufacturer_data=dict(self.manufacturer_data),
            service_data=dict(self.service_data),
            service_uuids=list(self.service_uuids),
            tx_power=None,
            rssi=self.rssi,
            platform_data=(),
        )


class FakeAir:
    """The radio environment of one test: peripherals, scanners, links and fault knobs."""

    def __init__(self, *, connection_slots: int = 3) -> None:
        self.connection_slots = connection_slots
        self.latency = 0.0
        self.peripherals: dict[str, FakePeripheral] = {}
        self.connects: dict[str, int] = {}
        self.writes: dict[str, list[tuple[str, bytes]]] = {}
        self._out_of_range: set[str] = set()
        self._connect_faults: dict[str, list[ConnectFault]] = {}
        self._scanners: list[_FakeScanner] = []
        self._links: dict[str, _FakeClient] = {}
        self.client_backend: type[BaseBleakClient] = type(
            "FakeBleakClient", (_FakeClient,), {"air": self}
        )
        self.scanner_backend: type[BaseBleakScanner] = type(
            "FakeBleakScanner", (_FakeScanner,), {"air": self}
        )

    def add(self, peripheral: FakePeripheral) -> None:
        """Put ``peripheral`` in range; it advertises at once."""
        peripheral._air = self
        self.peripherals[peripheral.address] = peripheral
        self.connects.setdefault(peripheral.address, 0)
        self.writes.setdefault(peripheral.address, [])
        peripheral.advertise()

    def remove(self, address: str) -> None:
        """Take a peripheral away (its link drops)."""
        self.drop(address)
        peripheral = self.peripherals.pop(address.upper(), None)
        if peripheral is not None:
            peripheral._air = None

    def device(self, address: str) -> BLEDevice:
        """A BLEDevice for a peripheral in the air (as a scanner would have found it)."""
        peripheral = self.peripherals[address.upper()]
        return BLEDevice(peripheral.address, peripheral.name, {"fake": True})

    def set_in_range(self, address: str, in_range: bool) -> None:
        """Out of range: connects fail with not-found, an open link drops, no advertisements."""
        key = address.upper()
        if in_range:
            self._out_of_range.discard(key)
        else:
            self._out_of_range.add(key)
            self.drop(key)

    def in_range(self, address: str) -> bool:
        """False while ``set_in_range(address, False)`` holds."""
        return address.upper() not in self._out_of_range

    def drop(self, address: str) -> None:
        """Drop the link to ``address`` now, as a peripheral walking out of range would."""
        link = self._links.get(address.upper())
        if link is not None:
            link.lost()

    def fail_next_connects(self, address: str, count: int, kind: ConnectFault = "timeout") -> None:
        """Make the next ``count`` connects to ``address`` fail with ``kind``."""
        self._connect_faults.setdefault(address.upper(), []).extend([kind] * count)

    @contextlib.contextmanager
    def install(self) -> Iterator[None]:
        """Make bleak pick this air's backends wherever no ``backend=`` is given."""
        client = (self.client_backend, "fake")
        scanner = (self.scanner_backend, "fake")
        with (
            mock.patch.object(bleak, "get_platform_client_backend_type", return_value=client),
            mock.patch.object(bleak, "get_platform_scanner_backend_type", return_value=scanner),
        ):
            yield

    def broadcast(self, peripheral: FakePeripheral) -> None:
        """Deliver ``peripheral``'s advertisement to every running scanner."""
        if peripheral.address in self._out_of_range:
            return
        for scanner in list(self._scanners):
            scanner.receive(peripheral)

    async def open_link(self, client: _FakeClient) -> FakePeripheral:
        """Connect ``client`` to its peripheral, or raise as a real adapter would."""
        address = client.address.upper()
        self.connects[address] = self.connects.get(address, 0) + 1
        faults = self._connect_faults.get(address)
        fault = faults.pop(0) if faults else None
        peripheral = self.peripherals.get(address)
        if fault == "out_of_slots" or (fault is None and len(self._links) >= self.connection_slots):
            raise BleakError(OUT_OF_SLOTS_MESSAGE)
        if fault == "timeout":
            raise TimeoutError(f"connecting to {address} timed out")
        if fault == "not_found" or peripheral is None or address in self._out_of_range:
            raise BleakDeviceNotFoundError(address, f"device {address} not found")
        if address in self._links:
            raise BleakError(f"{address}: already connected (org.bluez.Error.InProgress)")
        self._links[address] = client
        peripheral._link = client
        peripheral.on_connect()
        return peripheral

    def close_link(self, client: _FakeClient) -> None:
        """Forget ``client``'s link (either side ended it)."""
        address = client.address.upper()
        if self._links.get(address) is client:
            del self._links[address]
        peripheral = self.peripherals.get(address)
        if peripheral is not None and peripheral._link is client:
            peripheral._link = None
            peripheral.on_disconnect()

    async def delay(self) -> None:
        """The configured radio latency."""
        if self.latency:
            await asyncio.sleep(self.latency)


def _collection(peripheral: FakePeripheral) -> BleakGATTServiceCollection:
    collection = BleakGATTServiceCollection()
    handle = 1
    for service_uuid, characteristics in peripheral.services.items():
        service = BleakGATTService(None, handle, service_uuid.lower())
        collection.add_service(service)
        handle += 1
        for char_uuid, properties in characteristics.items():
            # bleak types properties as a Literal list; emulators declare plain strings.
            props = cast(list[CharacteristicPropertyName], properties)
            char = BleakGATTCharacteristic(
                None, handle, char_uuid.lower(), props, lambda: FAKE_MTU - 3, service
            )
            collection.add_characteristic(char)
            handle += 1
            if "notify" in properties or "indicate" in properties:
                cccd = BleakGATTDescriptor(
                    None, handle, "00002902-0000-1000-8000-00805f9b34fb", char
                )
                collection.add_descriptor(cccd)
                handle += 1
    return collection


class _FakeClient(BaseBleakClient):
    """bleak's client backend talking to a FakePeripheral through the FakeAir."""

    air: FakeAir

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        self._peripheral: FakePeripheral | None = None
        self._subscriptions: dict[str, NotifyCallback] = {}

    @property
    def name(self) -> str:
        return self._peripheral.name if self._peripheral is not None else self.address

    @property
    def mtu_size(self) -> int:
        return FAKE_MTU

    @property
    def is_connected(self) -> bool:
        return self._peripheral is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        await self.air.delay()
        self._peripheral = await self.air.open_link(self)
        self.services = _collection(self._peripheral)

    async def disconnect(self) -> None:
        if self._peripheral is not None:
            self._peripheral = None
            self._subscriptions.clear()
            self.air.close_link(self)

    def lost(self) -> None:
        """The link dropped under us: tell bleak's disconnected callback, as BlueZ would."""
        if self._peripheral is None:
            return
        self._peripheral = None
        self._subscriptions.clear()
        self.air.close_link(self)
        if self._disconnected_callback is not None:
            asyncio.get_running_loop().call_soon(self._disconnected_callback)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def unpair(self) -> None:
        return None

    def _require(self) -> FakePeripheral:
        if self._peripheral is None:
            raise BleakError("Not connected")
        return self._peripheral

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        peripheral = self._require()
        await self.air.delay()
        return bytearray(await peripheral.handle_read(characteristic.uuid))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        self._require()
        return bytearray(b"\x00\x00")

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
    ) -> None:
        peripheral = self._require()
        payload = bytes(data)
        self.air.writes.setdefault(peripheral.address, []).append((characteristic.uuid, payload))
        await self.air.delay()
        if self._peripheral is not peripheral:
            raise BleakError("Not connected: the link dropped during the write")
        await peripheral.handle_write(characteristic.uuid, payload)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        self._require()

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        self._require()
        self._subscriptions[characteristic.uuid] = callback

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        self._subscriptions.pop(characteristic.uuid, None)

    def deliver(self, char_uuid: str, data: bytes) -> None:
        """A notification from the peripheral: hand it to the subscriber after the latency."""
        callback = self._subscriptions.get(char_uuid)
        if callback is None:
            return
        loop = asyncio.get_running_loop()
        if self.air.latency:
            loop.call_later(self.air.latency, self._deliver_now, char_uuid, data)
        else:
            loop.call_soon(self._deliver_now, char_uuid, data)

    def _deliver_now(self, char_uuid: str, data: bytes) -> None:
        callback = self._subscriptions.get(char_uuid)
        if callback is not None:
            callback(bytearray(data))


class _FakeScanner(BaseBleakScanner):
    """bleak's scanner backend hearing the FakeAir's advertisements."""

    air: FakeAir

    def __init__(
        self,
        detection_callback: Any = None,
        service_uuids: list[str] | None = None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)

    async def start(self) -> None:
        self.seen_devices = {}
        self.air._scanners.append(self)
        for peripheral in list(self.air.peripherals.values()):
            if self.air.in_range(peripheral.address):
                self.receive(peripheral)

    async def stop(self) -> None:
        if self in self.air._scanners:
            self.air._scanners.remove(self)

    def receive(self, peripheral: FakePeripheral) -> None:
        """One advertisement heard: update seen devices and call the detection callbacks."""
        advertisement = peripheral.advertisement()
        if not self.is_allowed_uuid(advertisement.service_uuids):
            return
        device = self.create_or_update_device(
            peripheral.address, peripheral.address, peripheral.name, {"fake": True}, advertisement
        )
        self.call_detection_callbacks(device, advertisement)
