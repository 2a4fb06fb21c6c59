"""A full disk, for real: a tmpfs of a few MiB filled to the last page.

The store holds a reserve file (``gateway.store.space``). When SQLite first reports
SQLITE_FULL the store deletes it, writes the record anyway and says so (a ``hub.alert`` and
``Store.low_space``); then new windows are refused while PoD keeps landing until the freed
space is spent; a failed write leaves the chain and the file intact (``integrity_check``);
once space returns, the next write takes a new reserve and everything is accepted again.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.protocol.chain import verify_chain
from cloud_sync.protocol.envelope import Signer, verify
from cloud_sync.protocol.ids import new_ulid
from gateway.access import records
from gateway.locks.driver import EventKind, LockEvent
from gateway.store import (
    RESERVE_BYTES,
    Store,
    StoreFullError,
    StoreLowSpaceError,
    WindowRow,
)
from tests.access.harness import running_hub
from tests.faults.figures import Figures, record
from tests.faults.stores import integrity

from .smalldisk import SmallDisk, small_disk

pytestmark = pytest.mark.slow

HUB_ID = "hub-disk"
# The store-level tests: a 1 MiB reserve on a 16 MiB disk, so that spending the reserve
# takes a few hundred PoDs rather than thousands.
TEST_RESERVE = 1024 * 1024
STORE_DISK_MIB = 16
# The hub-level test runs with the real RESERVE_BYTES: room for it twice (to recover) and
# for the hub's files.
HUB_DISK_MIB = 3 * RESERVE_BYTES // (1024 * 1024) + 8
# A nearly full disk at start: room to open the database, not for the reserve.
NEARLY_FULL = 256 * 1024
CLOCK = {"synced": True, "source": "test"}
# A hub that has run a while: its WAL has reached the automatic checkpoint's 1000 pages and
# started over (a PoD writes about 9 pages to it), so later commits reuse its space.
PRELOAD_PODS = 150


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A 16 MiB tmpfs."""
    with small_disk(tmp_path / "disk", STORE_DISK_MIB) as mounted:
        yield mounted


def now() -> datetime:
    return datetime.now(UTC)


def window(window_id: str) -> WindowRow:
    start = now()
    return WindowRow(
        window_id=window_id,
        tenant_id="acme",
        task_id=f"task-{window_id}",
        lock_id="front-door",
        starts_at=start - timedelta(minutes=1),
        ends_at=start + timedelta(hours=1),
        version=1,
        max_uses=None,
        uses=0,
        enforcement="hub",
        state="active",
        code_hash=bytes(32),
        code_sealed=None,
        courier=None,
        carrier_job_id=None,
        updated_at=start,
    )


async def add_window(store: Store, row: WindowRow) -> None:
    """What applying a window.upsert writes: its status record and the row, together."""
    await store.append_records([records.window_status(row, "applied", CLOCK)], windows=[row])


async def pod(store: Store, row: WindowRow) -> WindowRow:
    """What an unlock writes: a PoD and the window's use count, together."""
    used = replace(row, uses=row.uses + 1, updated_at=now())
    event = LockEvent("front-door", EventKind.UNLOCKED, now(), "sim", new_ulid())
    _, body = records.pod(used, event, "hub_code", "code", CLOCK)
    await store.append_records([body], windows=[used])
    return used


async def open_store(path: Path, signer: Signer, reserve: int = TEST_RESERVE) -> Store:
    return await Store.open(path, signer=signer, hub_id=HUB_ID, now=now, reserve_bytes=reserve)


def outbox(db: Path, signer: Signer) -> list[dict[str, Any]]:
    """Every record in the closed store: signatures and chain verified, bodies decoded."""
    assert integrity(db) == "ok"
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT payload, envelope FROM records ORDER BY seq").fetchall()
    finally:
        conn.close()
    keys = {HUB_ID: signer.key.public_key()}
    payloads = [verify(json.loads(envelope), keys).payload for _, envelope in rows]
    assert payloads == [bytes(payload) for payload, _ in rows]
    verify_chain(payloads)
    return [json.loads(payload) for payload in payloads]


def alerts(decoded: list[dict[str, Any]]) -> list[str]:
    return [r["body"]["kind"] for r in decoded if r["type"] == "hub.alert"]


def low(store: Store) -> bool:
    """``store.low_space`` read afresh (a property mypy would otherwise narrow)."""
    return store.low_space


def held(reserve: Path) -> int:
    """Bytes of disk the reserve file holds (0 when it is gone)."""
    return reserve.stat().st_blocks * 512 if reserve.exists() else 0


async def test_a_full_disk_spends_the_reserve_on_pod_then_recovers(
    disk: SmallDisk, request: pytest.FixtureRequest
) -> None:
    signer = Signer(HUB_ID, Ed25519PrivateKey.generate())
    db = disk.path / "hub.db"
    started = time.monotonic()
    store = await open_store(db, signer)
    try:
        pods = await spend_the_reserve(store, disk, Path(f"{db}.reserve"))
    finally:
        await store.close()
    assert held(Path(f"{db}.reserve")) == 0
    decoded = outbox(db, signer)
    assert alerts(decoded) == ["store.disk_full", "store.space_recovered"]
    assert "w-refused" not in {r["body"].get("window_id") for r in decoded}
    figures = Figures(
        loop="disk full (store, tmpfs)",
        rounds=1,
        records=len(decoded),
        pods_ok=pods + 1,
        pods_in_cloud=0,
        lost=0,
        duplicated=0,
        extra=0,
        seconds=time.monotonic() - started,
        notes=f"{pods} PoDs on a {TEST_RESERVE // 1024} KiB reserve after the disk filled",
    )
    record(request.node.user_properties, figures)


async def spend_the_reserve(store: Store, disk: SmallDisk, reserve: Path) -> int:
    """Fill the disk, record PoD until even the reserve is spent, free the disk; return how
    many PoDs were recorded on the full disk."""
    assert held(reserve) >= TEST_RESERVE
    row = window("w-1")
    await add_window(store, row)
    for _ in range(PRELOAD_PODS):
        row = await pod(store, row)
    assert disk.fill() == 0
    # The disk is full. PoD goes on in the space SQLite already has, then (once a write
    # fails) out of the reserve, until that is spent too.
    pods = 0
    while True:
        head = await store.chain_head()
        try:
            row = await pod(store, row)
        except StoreFullError:
            break
        if low(store):
            pods += 1
        if pods == 1:
            assert held(reserve) == 0
            with pytest.raises(StoreLowSpaceError):
                await add_window(store, window("w-refused"))
    assert pods > 100, f"only {pods} PoDs fit in a {TEST_RESERVE} byte reserve"
    # A write that failed wrote nothing: the head is where it was, the file is sound.
    assert await store.chain_head() == head
    with pytest.raises(StoreFullError):
        await pod(store, row)
    assert await store.chain_head() == head
    # Space returns: the next write takes a new reserve, and windows are welcome again.
    assert disk.free() >= 2 * TEST_RESERVE
    row = await pod(store, row)
    assert not low(store)
    assert held(reserve) >= TEST_RESERVE
    await add_window(store, window("w-2"))
    return pods


async def test_a_store_opened_on_a_nearly_full_disk_starts_in_low_space_mode(
    disk: SmallDisk,
) -> None:
    signer = Signer(HUB_ID, Ed25519PrivateKey.generate())
    db = disk.path / "hub.db"
    assert disk.fill(leave=NEARLY_FULL) >= NEARLY_FULL // 2
    store = await open_store(db, signer)
    try:
        assert low(store)
        with pytest.raises(StoreLowSpaceError):
            await add_window(store, window("w-refused"))
        # A courier's token can bring a window the cloud never pushed: its PoD is not refused.
        await pod(store, window("w-token"))
        disk.free()
        await add_window(store, window("w-later"))
        assert not low(store)
    finally:
        await store.close()
    assert alerts(outbox(db, signer)) == ["store.disk_full", "store.space_recovered"]


@pytest.fixture
def hub_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    """A tmpfs big enough for a whole hub with its real reserve."""
    with small_disk(tmp_path / "hubdisk", HUB_DISK_MIB) as mounted:
        yield mounted


async def test_a_hub_on_a_full_disk_keeps_opening_doors_and_recovers(hub_disk: SmallDisk) -> None:
    async with running_hub(hub_disk.path) as hub:
        status, _ = await hub.send(hub.command("window.upsert", hub.upsert("w-1", "31415926")))
        assert status == 200
        assert hub_disk.fill() == 0
        for _ in range(20):
            status, body = await hub.unlock("front-door", code="31415926")
            assert status == 200, body
        assert low(hub.hub.store)
        hub_disk.free()
        status, _ = await hub.send(hub.command("window.upsert", hub.upsert("w-2", "27182818")))
        assert status == 200
        assert not low(hub.hub.store)
        assert (await hub.unlock("front-door", code="27182818"))[0] == 200
        kinds = [r["body"]["kind"] for r in await hub.records() if r["type"] == "hub.alert"]
        assert kinds == ["store.disk_full", "store.space_recovered"]
    assert integrity(hub_disk.path / "state" / "hub.db") == "ok"


async def test_a_window_command_on_a_full_disk_is_rejected_with_a_reason(
    hub_disk: SmallDisk,
) -> None:
    async with running_hub(hub_disk.path) as hub:
        status, _ = await hub.send(hub.command("window.upsert", hub.upsert("w-1", "31415926")))
        assert status == 200
        hub_disk.fill()
        assert (await hub.unlock("front-door", code="31415926"))[0] == 200
        status, results = await hub.send(
            hub.command("window.upsert", hub.upsert("w-2", "27182818"))
        )
        assert (status, results[0]["result"], results[0]["reason"]) == (
            422,
            "rejected",
            "storage_full",
        )
        answers = [r["body"] for r in await hub.records() if r["type"] == "command.result"]
        assert answers[-1]["reason"] == "storage_full"
