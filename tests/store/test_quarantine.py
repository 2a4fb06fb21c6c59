"""A corrupt database is moved aside (never deleted), logged, and reported as a hub.alert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog

from cloud_sync.protocol.envelope import Signer
from gateway.store import ALERT_RECORD_TYPE, Store
from gateway.testing import lock_event_record as lock_event

from .conftest import (
    HUB_ID,
    SettableClock,
    companion,
    exists,
    names_in,
    raw,
    read,
    write,
)

STAMP = "20260301T120000Z"  # conftest.START as the quarantine suffix


async def make_store_with_records(path: Path, signer: Signer, clock: SettableClock) -> None:
    async with await Store.open(path, signer=signer, hub_id=HUB_ID, now=clock) as store:
        await store.append_records([lock_event(n) for n in range(20)])


def damage_header(path: Path) -> None:
    with path.open("r+b") as file:
        file.write(b"this is not a database at all!!" * 4)


def damage_index_entry(path: Path) -> None:
    """Change one byte of a record_id inside its unique index, leaving the table intact."""
    with raw(path) as conn:
        (record_id,) = conn.execute("SELECT record_id FROM records WHERE seq = 1").fetchone()
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_records_1'"
        ).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    data = bytearray(path.read_bytes())
    offset = data.index(record_id.encode(), (root - 1) * page_size, root * page_size)
    data[offset + 25] ^= 0x01
    path.write_bytes(bytes(data))


def alert_bodies(path: Path) -> list[dict[str, object]]:
    with raw(path) as conn:
        rows = conn.execute("SELECT type, payload FROM records ORDER BY seq").fetchall()
    return [json.loads(payload)["body"] for type_, payload in rows if type_ == ALERT_RECORD_TYPE]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [(damage_header, "not a database"), (damage_index_entry, "missing from index")],
)
async def test_corrupt_file_is_quarantined_and_alerted(
    db_path: Path, signer: Signer, clock: SettableClock, damage: object, reason: str
) -> None:
    await make_store_with_records(db_path, signer, clock)
    original = read(db_path)
    damage(db_path)  # type: ignore[operator]
    damaged = read(db_path)
    assert damaged != original
    with structlog.testing.capture_logs() as logs:
        async with await Store.open(db_path, signer=signer, hub_id=HUB_ID, now=clock) as store:
            assert store.quarantined is not None
            assert reason in store.quarantined.reason
            records = await store.unacked(10)
    moved = db_path.with_name(f"hub.db.corrupt-{STAMP}")
    assert store.quarantined.path == moved
    assert read(moved) == damaged
    assert [r.seq for r in records] == [1]
    body = json.loads(records[0].payload)["body"]
    assert body["kind"] == "store.quarantined"
    assert body["severity"] == "critical"
    assert body["details"] == {"quarantined_path": str(moved), "reason": store.quarantined.reason}
    assert body["message"]
    critical = [e for e in logs if e["log_level"] == "critical"]
    assert critical[0]["event"] == "store.quarantined"
    assert critical[0]["quarantined_to"] == str(moved)


async def test_companion_files_move_with_it_and_names_never_collide(
    db_path: Path, signer: Signer, clock: SettableClock
) -> None:
    for attempt in range(2):
        await make_store_with_records(db_path, signer, clock)
        damage_header(db_path)
        write(companion(db_path, "-wal"), b"uncheckpointed wal")
        write(companion(db_path, "-shm"), b"shm")
        async with await Store.open(db_path, signer=signer, hub_id=HUB_ID, now=clock) as store:
            assert store.quarantined is not None
            suffix = "" if attempt == 0 else ".1"
            assert store.quarantined.path.name == f"hub.db.corrupt-{STAMP}{suffix}"
            # The check ran read-only, so SQLite neither checkpointed nor deleted the WAL.
            assert read(companion(store.quarantined.path, "-wal")) == b"uncheckpointed wal"
            assert exists(companion(store.quarantined.path, "-shm"))
    assert len(alert_bodies(db_path)) == 1  # the fresh file holds only its own alert
    assert len(list(db_path.parent.glob("hub.db.corrupt-*"))) == 6


async def test_a_file_needing_crash_recovery_is_checked_read_write(
    db_path: Path, signer: Signer, clock: SettableClock
) -> None:
    with raw(db_path) as conn:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("CREATE TABLE unrelated (x)")
    # A leftover rollback journal makes a read-only connection refuse to read.
    write(companion(db_path, "-journal"), b"not a valid journal")
    async with await Store.open(db_path, signer=signer, hub_id=HUB_ID, now=clock) as store:
        assert store.quarantined is None
    assert not exists(companion(db_path, "-journal"))


async def test_a_healthy_existing_file_is_left_alone(
    db_path: Path, signer: Signer, clock: SettableClock
) -> None:
    await make_store_with_records(db_path, signer, clock)
    async with await Store.open(db_path, signer=signer, hub_id=HUB_ID, now=clock) as store:
        assert store.quarantined is None
        assert await store.outbox_depth() == 20
    assert names_in(db_path.parent) == ["hub.db"]
