"""BleTransport over the fake bleak backend: serialised connects, slots, idle close, drops."""

from __future__ import annotations

import asyncio

import pytest
from bleak import BleakClient

from gateway.locks.ble.fake import FakeAir, FakePeripheral
from gateway.locks.ble.transport import BleTransport, BleUnreachableError

CHAR = "0000fff1-0000-1000-8000-00805f9b34fb"
SERVICE = "0000fff0-0000-1000-8000-00805f9b34fb"


class Echo(FakePeripheral):
    """Notifies back whatever is written, reversed."""

    def __init__(self, address: str) -> None:
        super().__init__(address, f"echo-{address[-2:]}")
        self.services = {SERVICE: {CHAR: ["write", "notify"]}}
        self.manufacturer_data = {0xFFFF: b"\x01"}

    async def handle_write(self, char_uuid: str, data: bytes) -> None:
        self.notify(char_uuid, data[::-1])


# One inbox per address for the whole test: a reused link keeps its first subscription.
INBOX: dict[str, asyncio.Queue[bytes]] = {}


@pytest.fixture
def air() -> FakeAir:
    INBOX.clear()
    air = FakeAir(connection_slots=3)
    for n in range(4):
        air.add(Echo(f"AA:BB:CC:DD:EE:0{n}"))
    return air


def transport_for(air: FakeAir, **kwargs: float) -> BleTransport:
    """A transport on ``air``'s backends."""
    return BleTransport(
        client_backend=air.client_backend, scanner_backend=air.scanner_backend, **kwargs
    )


async def roundtrip(transport: BleTransport, address: str, data: bytes) -> bytes:
    """Write ``data``; the notification lands in the queue the link's setup subscribed once."""
    got = INBOX.setdefault(address, asyncio.Queue())

    async def subscribe(client: BleakClient) -> None:
        await client.start_notify(CHAR, lambda _c, d: got.put_nowait(bytes(d)))

    async with transport.connection(address, setup=subscribe) as client:
        await client.write_gatt_char(CHAR, data, response=True)
        return await asyncio.wait_for(got.get(), 2)


async def test_a_link_is_reused_then_closed_when_idle(air: FakeAir) -> None:
    transport = transport_for(air, idle_disconnect=0.1)
    address = "AA:BB:CC:DD:EE:00"
    assert await roundtrip(transport, address, b"abc") == b"cba"
    assert await roundtrip(transport, address, b"xy") == b"yx"
    assert air.connects[address] == 1
    assert air.peripherals[address].connected
    await asyncio.sleep(0.3)
    assert not air.peripherals[address].connected
    assert await roundtrip(transport, address, b"q") == b"q"
    assert air.connects[address] == 2
    await transport.stop()
    assert not air.peripherals[address].connected


async def test_advertisements_reach_watchers(air: FakeAir) -> None:
    transport = transport_for(air)
    heard: list[bytes] = []
    address = "AA:BB:CC:DD:EE:01"
    transport.watch(address, lambda _d, ad: heard.append(ad.manufacturer_data[0xFFFF]))
    await transport.start()
    peripheral = air.peripherals[address]
    peripheral.manufacturer_data = {0xFFFF: b"\x02"}
    peripheral.advertise()
    assert heard == [b"\x01", b"\x02"]
    seen = transport.last_seen(address)
    assert seen is not None
    assert seen[1].local_name == "echo-01"
    await transport.stop()


async def test_idle_links_give_way_when_slots_run_out(air: FakeAir) -> None:
    transport = transport_for(air, connection_slots=2, idle_disconnect=60)
    for n in range(4):
        assert await roundtrip(transport, f"AA:BB:CC:DD:EE:0{n}", b"ok") == b"ko"
    assert sum(p.connected for p in air.peripherals.values()) == 2
    await transport.stop()


async def test_out_of_slots_is_ridden_out_and_absence_is_unreachable(air: FakeAir) -> None:
    transport = transport_for(air, connect_timeout=6.0)
    address = "AA:BB:CC:DD:EE:02"
    air.fail_next_connects(address, 1, "out_of_slots")
    # bleak-retry-connector backs off (4 s) and tries again: the connect succeeds.
    assert await roundtrip(transport, address, b"x") == b"x"
    assert air.connects[address] == 2
    await transport.stop()
    transport = transport_for(air, connect_timeout=1.0)
    air.set_in_range(address, False)
    with pytest.raises(BleUnreachableError, match="no connection within 1 s"):
        await roundtrip(transport, address, b"x")
    air.set_in_range(address, True)
    assert await roundtrip(transport, address, b"back") == b"kcab"
    await transport.stop()


async def test_connect_errors_become_unreachable(air: FakeAir) -> None:
    transport = transport_for(air, connect_timeout=30.0)
    address = "AA:BB:CC:DD:EE:02"
    air.fail_next_connects(address, 2, "timeout")
    with pytest.raises(BleUnreachableError, match="not found"):
        await roundtrip(transport, address, b"x")


async def test_a_dropped_link_is_reported_and_reopened(air: FakeAir) -> None:
    transport = transport_for(air, idle_disconnect=60)
    address = "AA:BB:CC:DD:EE:03"
    lost = asyncio.Event()
    async with transport.connection(address, on_lost=lost.set) as client:
        air.drop(address)
        await asyncio.wait_for(lost.wait(), 1)
        assert not client.is_connected
    assert await roundtrip(transport, address, b"re") == b"er"
    assert air.connects[address] == 2
    await transport.stop()


async def test_discover_lists_every_peripheral_with_progress(air: FakeAir) -> None:
    transport = transport_for(air)
    counts: list[int] = []
    found = await transport.discover(0.2, counts.append)
    assert [d.address for d, _ in found] == [f"AA:BB:CC:DD:EE:0{n}" for n in range(4)]
    assert counts
    assert counts[-1] == 4


async def test_each_callers_setup_runs_once_per_link(air: FakeAir) -> None:
    transport = transport_for(air, idle_disconnect=60)
    address = "AA:BB:CC:DD:EE:00"
    runs: list[str] = []

    async def first(_: BleakClient) -> None:
        runs.append("first")

    async def second(_: BleakClient) -> None:
        runs.append("second")

    for setup in (first, second, first, second):
        async with transport.connection(address, setup=setup):
            pass
    assert runs == ["first", "second"]
    air.drop(address)
    await asyncio.sleep(0)
    async with transport.connection(address, setup=second):
        pass
    assert runs == ["first", "second", "second"]  # a new link subscribes again
    await transport.stop()


async def test_a_link_closed_by_its_user_frees_its_slot(air: FakeAir) -> None:
    transport = transport_for(air, connection_slots=1, idle_disconnect=60)
    address = "AA:BB:CC:DD:EE:01"
    async with transport.connection(address) as client:
        await client.disconnect()
    async with transport.connection(address) as client:
        assert client.is_connected
    # The one slot is free for another lock (the idle link gives way).
    assert await roundtrip(transport, "AA:BB:CC:DD:EE:02", b"ab") == b"ba"
    await transport.stop()
