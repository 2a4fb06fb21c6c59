"""The hub's one Bluetooth LE transport: it owns the adapter for every BLE lock driver.

One process owns the adapter; connects happen one attempt at a time (BlueZ answers
``InProgress`` to a second); at most ``connection_slots`` links stay open (adapters hold few);
a link is reused while in use and closed once idle (lock batteries pay for every connected
second); a passive scanner watches advertisements so drivers notice state changes without
polling. Connect retries and stale-connection cleanup come from bleak-retry-connector.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakError
from bleak_retry_connector import (
    BleakClientWithServiceCache,
    BleakNotFoundError,
    BleakOutOfConnectionSlotsError,
    establish_connection,
)

from ..driver import LockUnreachableError

log = structlog.get_logger(__name__)

# A Pi's built-in controller holds a handful of links; leave one free for a courier's phone
# tools and scans. Raise it for a USB dongle that holds more.
CONNECTION_SLOTS = 2
# Each connected second costs a lock's battery; a courier's next action (lock after unlock,
# the keypad code after a status read) usually follows within seconds.
IDLE_DISCONNECT_SECONDS = 10.0
# bleak-retry-connector's own attempts (each up to ~20 s): two ride out a missed advertisement;
# the coordinator retries the whole operation on top.
CONNECT_ATTEMPTS = 2
# bleak-retry-connector backs off 4 s per out-of-slots or not-found answer, up to 9 times; a
# courier cannot wait that long, and the coordinator's 15 s unlock timeout must cover one
# whole connect, so a connect gives up after 12 s and the coordinator decides what next.
CONNECT_TIMEOUT = 12.0
# A lock not heard for this long is looked for by an active scan before connecting.
FIND_TIMEOUT = 10.0
# A discovery scan by `lockhub gateway scan` reports progress this often.
PROGRESS_SECONDS = 0.5

Advertisement = tuple[BLEDevice, AdvertisementData]
AdCallback = Callable[[BLEDevice, AdvertisementData], None]
Setup = Callable[[BleakClient], Awaitable[None]]


class BleUnreachableError(LockUnreachableError):
    """The lock could not be reached over BLE (not found, out of slots, timeout, dropped)."""

    def __init__(self, address: str, why: str) -> None:
        super().__init__(f"BLE {address}: {why}")
        self.address = address


@dataclass(slots=True)
class _Link:
    """One open connection, its users and its idle timer."""

    client: BleakClient
    users: int = 0
    idle: asyncio.TimerHandle | None = None
    lost_callbacks: list[Callable[[], None]] = field(default_factory=list)
    # Setups already run on this physical link (each caller's subscriptions, once per link).
    setups: list[Setup] = field(default_factory=list)


class BleTransport:
    """Advertisements in, serialised connects out, idle links closed."""

    def __init__(
        self,
        *,
        client_backend: type[BaseBleakClient] | None = None,
        scanner_backend: type[BaseBleakScanner] | None = None,
        connection_slots: int = CONNECTION_SLOTS,
        idle_disconnect: float = IDLE_DISCONNECT_SECONDS,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self._client_backend = client_backend
        self._scanner_backend = scanner_backend
        self._idle_disconnect = idle_disconnect
        self._connect_timeout = connect_timeout
        self._slots = asyncio.Semaphore(connection_slots)
        self._connecting = asyncio.Lock()
        self._links: dict[str, _Link] = {}
        self._link_locks: dict[str, asyncio.Lock] = {}
        self._seen: dict[str, Advertisement] = {}
        self._watchers: dict[str, list[AdCallback]] = {}
        self._scanner: BleakScanner | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start the passive advertisement watch; LockUnreachableError without an adapter."""
        if self._scanner is not None:
            return
        scanner = self._new_scanner(self._heard)
        try:
            await scanner.start()
        except (BleakError, OSError) as exc:
            raise BleUnreachableError("adapter", f"cannot start scanning: {exc}") from exc
        self._scanner = scanner
        log.info("ble.started")

    async def stop(self) -> None:
        """Stop scanning and close every link."""
        if self._scanner is not None:
            with contextlib.suppress(BleakError, OSError):
                await self._scanner.stop()
            self._scanner = None
        for address in list(self._links):
            await self._close(address)

    def watch(self, address: str, callback: AdCallback) -> Callable[[], None]:
        """Call ``callback`` for each advertisement from ``address``; returns the unsubscribe."""
        key = address.upper()
        self._watchers.setdefault(key, []).append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._watchers.get(key, []).remove(callback)

        return unsubscribe

    def last_seen(self, address: str) -> Advertisement | None:
        """The latest device and advertisement heard from ``address``."""
        return self._seen.get(address.upper())

    @contextlib.asynccontextmanager
    async def connection(
        self,
        address: str,
        *,
        setup: Setup | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> AsyncIterator[BleakClient]:
        """An open link to ``address`` for the block; reused while open, closed once idle."""
        key = address.upper()
        lock = self._link_locks.setdefault(key, asyncio.Lock())
        async with lock:
            link = self._links.get(key)
            if link is not None and not link.client.is_connected:
                self._forget(key)  # closed under us (a caller's disconnect): free its slot
                link = None
            if link is None:
                link = await self._open(key)
            if setup is not None and setup not in link.setups:
                try:
                    await setup(link.client)
                except BaseException:
                    await self._close(key)
                    raise
                link.setups.append(setup)
            if on_lost is not None:
                link.lost_callbacks.append(on_lost)
            link.users += 1
            if link.idle is not None:
                link.idle.cancel()
                link.idle = None
        try:
            yield link.client
        finally:
            if on_lost is not None:
                with contextlib.suppress(ValueError):
                    link.lost_callbacks.remove(on_lost)
            link.users -= 1
            if link.users == 0 and self._links.get(key) is link:
                link.idle = asyncio.get_running_loop().call_later(
                    self._idle_disconnect, self._close_soon, key
                )

    async def discover(
        self, duration: float, progress: Callable[[int], None] | None = None
    ) -> list[Advertisement]:
        """Scan actively for ``duration`` seconds; ``progress`` gets the count found so far."""
        found: dict[str, Advertisement] = {}

        def heard(device: BLEDevice, advertisement: AdvertisementData) -> None:
            found[device.address.upper()] = (device, advertisement)

        scanner = self._new_scanner(heard)
        try:
            await scanner.start()
        except (BleakError, OSError) as exc:
            raise BleUnreachableError("adapter", f"cannot scan: {exc}") from exc
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + duration
            while (left := deadline - loop.time()) > 0:
                await asyncio.sleep(min(PROGRESS_SECONDS, left))
                if progress is not None:
                    progress(len(found))
        finally:
            with contextlib.suppress(BleakError, OSError):
                await scanner.stop()
        return sorted(found.values(), key=lambda item: item[0].address)

    def _new_scanner(self, callback: AdCallback) -> BleakScanner:
        if self._scanner_backend is not None:
            return BleakScanner(callback, backend=self._scanner_backend)
        return BleakScanner(callback)

    def _heard(self, device: BLEDevice, advertisement: AdvertisementData) -> None:
        key = device.address.upper()
        self._seen[key] = (device, advertisement)
        for callback in list(self._watchers.get(key, ())):
            callback(device, advertisement)

    async def _find(self, key: str) -> BLEDevice:
        seen = self._seen.get(key)
        if seen is not None:
            return seen[0]
        # Not heard since start: a BLEDevice from the address alone lets bleak look it up.
        return BLEDevice(key, None, {})

    async def _open(self, key: str) -> _Link:
        await self._acquire_slot(key)
        try:
            device = await self._find(key)
            async with self._connecting:
                client = await self._connect(key, device)
        except BaseException:
            self._slots.release()
            raise
        link = _Link(client)
        self._links[key] = link
        log.info("ble.connected", address=key)
        return link

    async def _acquire_slot(self, key: str) -> None:
        if self._slots.locked():
            # Free an idle link rather than wait for its timer.
            for address, link in list(self._links.items()):
                if link.users == 0:
                    await self._close(address)
                    break
        try:
            await asyncio.wait_for(self._slots.acquire(), FIND_TIMEOUT)
        except TimeoutError:
            raise BleUnreachableError(key, "every connection slot is busy") from None

    async def _connect(self, key: str, device: BLEDevice) -> BleakClient:
        def disconnected(_: BleakClient) -> None:
            self._lost(key)

        kwargs: dict[str, Any] = {}
        if self._client_backend is not None:
            kwargs["backend"] = self._client_backend
        try:
            async with asyncio.timeout(self._connect_timeout):
                return await establish_connection(
                    BleakClientWithServiceCache,
                    device,
                    key,
                    disconnected_callback=disconnected,
                    max_attempts=CONNECT_ATTEMPTS,
                    use_services_cache=False,
                    **kwargs,
                )
        except TimeoutError as exc:
            raise BleUnreachableError(
                key, f"no connection within {self._connect_timeout:g} s"
            ) from exc
        except BleakOutOfConnectionSlotsError as exc:
            raise BleUnreachableError(key, "the adapter is out of connection slots") from exc
        except BleakNotFoundError as exc:
            raise BleUnreachableError(key, "not found (out of range or asleep)") from exc
        except (BleakError, OSError) as exc:
            raise BleUnreachableError(key, f"cannot connect: {exc}") from exc

    def _forget(self, key: str) -> _Link | None:
        """Drop the link from the table, its idle timer and its slot; the caller closes it."""
        link = self._links.pop(key, None)
        if link is None:
            return None
        if link.idle is not None:
            link.idle.cancel()
        self._slots.release()
        return link

    def _lost(self, key: str) -> None:
        link = self._forget(key)
        if link is None:
            return
        log.info("ble.lost", address=key)
        for callback in list(link.lost_callbacks):
            callback()

    def _close_soon(self, key: str) -> None:
        task = asyncio.get_running_loop().create_task(self._close(key))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close(self, key: str) -> None:
        link = self._forget(key)
        if link is None:
            return
        with contextlib.suppress(BleakError, TimeoutError, OSError):
            await link.client.disconnect()
        log.info("ble.disconnected", address=key)
