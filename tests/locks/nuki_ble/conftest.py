"""A Nuki emulator in a fake radio, the shared BLE transport, and a paired driver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config import LockSection
from gateway.locks.ble.fake import FakeAir
from gateway.locks.ble.nuki.driver import NukiBleDriver, build, pair
from gateway.locks.ble.nuki.emulator import NukiEmulator
from gateway.locks.ble.transport import BleTransport
from gateway.locks.registry import DriverContext
from gateway.testing import FakeClock

ADDRESS = "54:D2:72:AA:BB:01"
PIN = 4711
# Short waits: the emulator answers at once, so a missing answer is known within 0.3 s.
RESPONSE_TIMEOUT = 0.3


class ScriptedUI:
    """The person at the terminal during pairing: presses Enter, reads the messages."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def say(self, message: str) -> None:
        self.said.append(message)

    async def ask(self, prompt: str, *, secret: bool = False) -> str:
        self.said.append(prompt)
        return ""


@pytest.fixture
def air() -> FakeAir:
    return FakeAir(connection_slots=3)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def lock(air: FakeAir, clock: FakeClock) -> NukiEmulator:
    emulator = NukiEmulator(ADDRESS, now=clock.now, security_pin=PIN)
    air.add(emulator)
    return emulator


@pytest.fixture
def pin_file(tmp_path: Path) -> Path:
    path = tmp_path / "nuki.pin"
    path.write_text(f"{PIN}\n")
    path.chmod(0o600)
    return path


def section(**options: object) -> LockSection:
    return LockSection(id="front-door", driver="nuki_ble", options={"address": ADDRESS, **options})


async def new_transport(air: FakeAir) -> BleTransport:
    transport = BleTransport(
        client_backend=air.client_backend,
        scanner_backend=air.scanner_backend,
        connection_slots=2,
        idle_disconnect=0.2,
        connect_timeout=0.5,
    )
    await transport.start()
    return transport


def context_for(transport: BleTransport, clock: FakeClock, state_dir: Path) -> DriverContext:
    return DriverContext(
        now=clock.now,
        sleep=asyncio.sleep,
        source="test.toml",
        state_dir=state_dir,
        ble=lambda: transport,
    )


async def paired(
    air: FakeAir, lock: NukiEmulator, clock: FakeClock, state_dir: Path
) -> DriverContext:
    """Pair over a transport of its own (as the CLI's separate process would), then drop it."""
    transport = await new_transport(air)
    lock.set_pairing_mode(True)
    try:
        await pair(section(), context_for(transport, clock, state_dir), ScriptedUI())
    finally:
        await transport.stop()
    return context_for(await new_transport(air), clock, state_dir)


def make_driver(context: DriverContext, **options: object) -> NukiBleDriver:
    driver = build(section(**options), context)
    driver._timeouts = (RESPONSE_TIMEOUT, RESPONSE_TIMEOUT)
    return driver


@pytest.fixture
async def driver(
    air: FakeAir, lock: NukiEmulator, clock: FakeClock, tmp_path: Path, pin_file: Path
) -> AsyncIterator[NukiBleDriver]:
    context = await paired(air, lock, clock, tmp_path)
    nuki = make_driver(context, security_pin_file=str(pin_file))
    await nuki.start()
    yield nuki
    await nuki.stop()
    await context.ble_transport().stop()


@pytest.fixture
async def driver_without_pin(
    air: FakeAir, lock: NukiEmulator, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[NukiBleDriver]:
    context = await paired(air, lock, clock, tmp_path)
    nuki = make_driver(context)
    await nuki.start()
    yield nuki
    await nuki.stop()
    await context.ble_transport().stop()
