"""A whole hub driving vendor locks: a Nuki over (fake) BLE and a lock behind a Nuki Bridge.

Courier codes open the doors through the hub's API; a lock-enforced window's code is set on
the Nuki's keypad, typed there, and the PoD is attributed to its window from the lock's log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import BleSection, LockSection
from gateway.locks.adapter import BleProvider
from gateway.locks.ble.fake import FakeAir
from gateway.locks.ble.nuki.driver import pair as pair_nuki
from gateway.locks.ble.nuki.emulator import NukiEmulator
from gateway.locks.ble.transport import BleTransport
from gateway.locks.bridges.fake_nuki_bridge import FakeDevice, FakeNukiBridge
from gateway.locks.registry import DriverContext
from gateway.testing import FakeClock

from ..access.harness import HubHarness, running_hub

ADDRESS = "54:D2:72:AA:BB:07"
PIN = 4711
NUKI_ID = 1001
BRIDGE_TOKEN = "bridge-token-0123"  # noqa: S105 - the fake bridge's test token
LOCKS = """
[[locks]]
id = "nuki-door"
driver = "nuki_ble"
[locks.options]
address = "{address}"
security_pin_file = "{pin_file}"

[[locks]]
id = "bridge-door"
driver = "nuki_bridge"
[locks.options]
host = "127.0.0.1"
port = {port}
nuki_id = {nuki_id}
token_file = "{token_file}"
"""


class PressEnter:
    """The installer at the terminal: presses Enter when asked."""

    def say(self, message: str) -> None:
        del message

    async def ask(self, prompt: str, *, secret: bool = False) -> str:
        del prompt, secret
        return ""


def secret_file(path: Path, text: str) -> str:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return str(path)


def fake_transport(air: FakeAir) -> BleTransport:
    return BleTransport(
        client_backend=air.client_backend,
        scanner_backend=air.scanner_backend,
        idle_disconnect=0.5,
        connect_timeout=2.0,
    )


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[HubHarness, NukiEmulator, FakeNukiBridge]]:
    clock = FakeClock()
    air = FakeAir()
    nuki = NukiEmulator(ADDRESS, now=clock.now, security_pin=PIN)
    air.add(nuki)
    # Pair first, as `lockhub gateway pair nuki` does with the daemon stopped.
    pairing = fake_transport(air)
    nuki.set_pairing_mode(True)
    section = LockSection(id="nuki-door", driver="nuki_ble", options={"address": ADDRESS})
    context = DriverContext(
        now=clock.now,
        sleep=asyncio.sleep,
        source="test",
        state_dir=tmp_path / "state",
        ble=lambda: pairing,
    )
    await pair_nuki(section, context, PressEnter())
    await pairing.stop()
    nuki.set_pairing_mode(False)
    bridge_devices = [FakeDevice(NUKI_ID)]
    async with FakeNukiBridge(token=BRIDGE_TOKEN, devices=bridge_devices, now=clock.now) as bridge:
        locks = LOCKS.format(
            address=ADDRESS,
            pin_file=secret_file(tmp_path / "nuki.pin", str(PIN)),
            port=bridge.port,
            nuki_id=NUKI_ID,
            token_file=secret_file(tmp_path / "bridge.token", BRIDGE_TOKEN),
        )
        ble = BleProvider(BleSection(), fake_transport(air))
        async with running_hub(tmp_path, locks=locks, ble=ble, clock=clock) as hub:
            yield hub, nuki, bridge


def pods(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r["body"] for r in records if r["type"] == "pod.recorded"]


async def eventually(hub: HubHarness, check: Any, seconds: float = 5.0) -> None:
    """Poll ``check``, moving the hub's fake clock along (drivers pace themselves on it)."""
    async with asyncio.timeout(seconds):
        while not await check():
            hub.clock.advance(0.25)
            await asyncio.sleep(0.02)


async def test_couriers_open_a_nuki_and_a_bridge_lock_with_hub_codes(
    site: tuple[HubHarness, NukiEmulator, FakeNukiBridge],
) -> None:
    hub, nuki, bridge = site
    await hub.send(
        hub.command("window.upsert", hub.upsert("w-nuki", "13572468", lock_id="nuki-door"))
    )
    await hub.send(
        hub.command("window.upsert", hub.upsert("w-bridge", "24681357", lock_id="bridge-door"))
    )
    await hub.quiet()

    assert (await hub.unlock("nuki-door", code="00000000"))[0] == 403
    status, answer = await hub.unlock("nuki-door", code="13572468")
    assert status == 200, answer
    assert nuki.lock_state != 1  # no longer locked: the motor ran
    status, bridged = await hub.unlock("bridge-door", code="24681357")
    assert status == 200, bridged
    assert [action for _, action in bridge.actions] == [1]  # exactly one unlock

    records = await hub.records()
    by_window = {pod["window_id"]: pod for pod in pods(records)}
    assert by_window["w-nuki"]["pod_id"] == answer["pod_id"]
    assert by_window["w-nuki"]["lock_event"]["vendor"] == "nuki"
    assert by_window["w-bridge"]["pod_id"] == bridged["pod_id"]
    locks = {lock["lock_id"]: lock for lock in (await hub.admin("/v1/admin/locks"))["locks"]}
    assert locks["nuki-door"]["keypad"] is True
    assert locks["bridge-door"]["keypad"] is False


async def test_a_lock_enforced_window_is_typed_on_the_nuki_keypad_and_attributed(
    site: tuple[HubHarness, NukiEmulator, FakeNukiBridge],
) -> None:
    hub, nuki, _ = site
    body = hub.upsert("w-keypad", "975318", lock_id="nuki-door", enforcement="lock")
    await hub.send(hub.command("window.upsert", body))

    async def code_on_lock() -> bool:
        await hub.quiet()
        return any(str(entry.spec.code) == "975318" for entry in nuki.codes.values())

    await eventually(hub, code_on_lock)
    window = hub.hub.engine.cache.get("w-keypad")
    assert window is not None
    assert window.lock_side == "set_on_lock"
    assert window.code_sealed is None  # the hub no longer holds the code

    assert nuki.press_keypad("975318")

    async def attributed() -> bool:
        await hub.quiet()
        return any(pod["window_id"] == "w-keypad" for pod in pods(await hub.records()))

    await eventually(hub, attributed)
    (pod,) = [p for p in pods(await hub.records()) if p["window_id"] == "w-keypad"]
    assert pod["method"] == "lock_keypad"
    assert pod["lock_event"]["vendor"] == "nuki"
