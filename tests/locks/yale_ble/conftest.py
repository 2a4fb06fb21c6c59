"""The Yale BLE driver on the fake bleak backend, yalexs-ble unmodified, against the emulator.

Patched, all in third-party libraries and all pacing only (none of our code paths):
- ``yalexs_ble.session.COOLDOWN_TIME``: yalexs-ble waits 0.25 s after each frame so real lock
  firmware is not flooded; the emulator needs no pause, and the suite stays fast.
- bleak-retry-connector's back-off constants for out-of-slots (4 s) and timeouts (0.25 s): the
  same retries run, only shorter.
- ``DBUS_SYSTEM_BUS_ADDRESS`` points at a socket that does not exist: bleak-retry-connector looks
  BlueZ up over D-Bus for stale-connection cleanup and device lookups on Linux; with no bus it
  skips them (as on a host without BlueZ), whatever the test machine runs.
bleak's backend selection is patched by ``FakeAir.install()`` (yalexs-ble builds its own client).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import bleak_retry_connector
import pytest
import yalexs_ble.session

from gateway.config import LockSection
from gateway.locks.ble.fake import FakeAir
from gateway.locks.ble.transport import BleTransport
from gateway.locks.ble.yale import CREDENTIAL_KIND, YaleBleDriver, build
from gateway.locks.ble.yale_emulator import YaleLockEmulator
from gateway.locks.driver import LockEvent
from gateway.locks.registry import DriverContext

KEY = "00112233445566778899aabbccddeeff"
SLOT = 1
SERIAL = "L2FRB12345"
# yalexs-ble counts auth failures per address for the whole process: one address per test.
_ADDRESSES = itertools.count(1)


@pytest.fixture(autouse=True)
def _fast_pacing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yalexs_ble.session, "COOLDOWN_TIME", 0.005)
    monkeypatch.setattr(bleak_retry_connector, "BLEAK_OUT_OF_SLOTS_BACKOFF_TIME", 0.01)
    monkeypatch.setattr(bleak_retry_connector, "BLEAK_DBUS_BACKOFF_TIME", 0.01)
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/lockhub-test-bus")


@pytest.fixture
def air() -> Iterator[FakeAir]:
    air = FakeAir(connection_slots=3)
    with air.install():
        yield air


@pytest.fixture
def address() -> str:
    n = next(_ADDRESSES)
    return f"C0:FF:EE:00:{n // 256:02X}:{n % 256:02X}"


@pytest.fixture
def emulator(air: FakeAir, address: str) -> YaleLockEmulator:
    lock = YaleLockEmulator(address, SERIAL, {SLOT: KEY, 7: "ff" * 16})
    air.add(lock)
    return lock


@pytest.fixture
async def transport(air: FakeAir) -> AsyncIterator[BleTransport]:
    transport = BleTransport(client_backend=air.client_backend, scanner_backend=air.scanner_backend)
    yield transport
    await transport.stop()


def now() -> datetime:
    return datetime.now(UTC)


def context_for(tmp_path: Path, transport: BleTransport) -> DriverContext:
    return DriverContext(
        now=now, sleep=asyncio.sleep, source="test.toml", state_dir=tmp_path, ble=lambda: transport
    )


def section_for(address: str, **options: object) -> LockSection:
    return LockSection(id="front-door", driver="yale_ble", options={"address": address} | options)


def store_key(tmp_path: Path, key: str = KEY, slot: int = SLOT) -> None:
    context = DriverContext(now=now, sleep=asyncio.sleep, source="test.toml", state_dir=tmp_path)
    data = {"key": key, "slot": slot, "serial": SERIAL, "name": "Front door"}
    context.credentials().save("front-door", CREDENTIAL_KIND, data)


@pytest.fixture
async def driver(
    tmp_path: Path, transport: BleTransport, emulator: YaleLockEmulator
) -> AsyncIterator[YaleBleDriver]:
    store_key(tmp_path)
    built = build(
        section_for(emulator.address, has_keypad=True, keypad_slot_count=3),
        context_for(tmp_path, transport),
    )
    assert isinstance(built, YaleBleDriver)
    await built.start()
    yield built
    await built.stop()


async def next_event(driver: YaleBleDriver, within: float = 3.0) -> LockEvent:
    """The driver's next event, failing fast instead of hanging."""
    async with asyncio.timeout(within):
        return await anext(aiter(driver.events()))


async def until(condition: object, within: float = 3.0) -> None:
    """Wait (briefly polling) until ``condition()`` is true."""
    assert callable(condition)
    async with asyncio.timeout(within):
        # The state lives in the emulator or in yalexs-ble: nothing to await but time.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
