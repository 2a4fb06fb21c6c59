"""The outbox: gap-free seq, the hash chain, signatures, acks and purges."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cloud_sync.protocol.chain import GENESIS_HASH, payload_hash
from cloud_sync.protocol.envelope import Signer, verify
from gateway.store import (
    ChainHead,
    InvalidRecordError,
    NewRecord,
    Store,
    StoreConstraintError,
    StoredRecord,
    StoreFullError,
)
from gateway.testing import lock_event_record as lock_event

from .conftest import HUB_ID, SettableClock, raw


def events(count: int, start: int = 0) -> list[NewRecord]:
    return [lock_event(n) for n in range(start, start + count)]


def check_chain(records: list[StoredRecord], signer: Signer) -> None:
    keys = {HUB_ID: signer.key.public_key()}
    prev = GENESIS_HASH
    for expected_seq, record in enumerate(records, start=1):
        payload = json.loads(record.payload)
        assert (record.seq, payload["seq"]) == (expected_seq, expected_seq)
        assert payload["body"]["prev_hash"] == prev
        assert payload["id"] == record.record_id
        assert payload["hub_id"] == HUB_ID
        assert record.payload_hash == payload_hash(record.payload)
        assert verify(record.envelope, keys).payload == record.payload
        prev = record.payload_hash


async def test_append_chains_signs_and_survives_reopen(
    db_path: Path, signer: Signer, clock: SettableClock
) -> None:
    async with await Store.open(db_path, signer=signer, hub_id=HUB_ID, now=clock) as store:
        first = await store.append_records(events(3))
        second = await store.append_records(events(1, 3))
    async with await Store.open(db_path, signer=signer, hub_id=HUB_ID, now=clock) as store:
        third = await store.append_records(events(2, 4))
        stored = await store.unacked(100)
        assert await store.chain_head() == ChainHead(6, third[-1].payload_hash)
    assert stored == first + second + third
    check_chain(stored, signer)
    assert stored[0].created_at == clock()
    assert json.loads(stored[5].payload)["body"]["details"]["n"] == 5


async def test_body_is_not_mutated_and_empty_batches_do_nothing(store: Store) -> None:
    record = lock_event(1)
    before = dict(record.body)
    await store.append_records([record])
    assert record.body == before
    assert await store.append_records([]) == []
    assert (await store.chain_head()).seq == 1


async def test_ack_unacked_depth_and_purge(store: Store, clock: SettableClock) -> None:
    await store.append_records(events(10))
    assert await store.ack([]) == 0
    assert await store.ack([(1, 3), (5, 5), (3, 4)]) == 5
    assert await store.ack([(1, 5)]) == 0  # already acked
    assert await store.outbox_depth() == 5
    assert [r.seq for r in await store.unacked(3)] == [6, 7, 8]
    clock.advance(60)
    assert await store.ack([(6, 6), (9, 50)]) == 3  # 11..50 do not exist yet
    assert await store.purge_acked(clock()) == 5  # acked a minute ago
    assert await store.purge_acked(clock()) == 0  # the rest were acked at this very moment
    clock.advance(1)
    assert await store.purge_acked(clock()) == 3
    remaining = await store.unacked(10)
    assert [r.seq for r in remaining] == [7, 8]
    assert all(r.acked_at is None for r in remaining)


async def test_acks_past_the_head_do_not_pre_ack_future_records(store: Store) -> None:
    await store.append_records(events(2))
    assert await store.ack([(1, 100)]) == 2
    later = await store.append_records(events(3))
    assert [r.seq for r in later] == [3, 4, 5]
    assert await store.outbox_depth() == 3


async def test_purge_keeps_the_chain_head(
    db_path: Path, signer: Signer, clock: SettableClock
) -> None:
    async with await Store.open(db_path, signer=signer, hub_id=HUB_ID, now=clock) as store:
        appended = await store.append_records(events(4))
        await store.ack([(1, 4)])
        clock.advance(1)
        assert await store.purge_acked(clock()) == 4
    async with await Store.open(db_path, signer=signer, hub_id=HUB_ID, now=clock) as store:
        (record,) = await store.append_records(events(1))
    assert record.seq == 5
    assert json.loads(record.payload)["body"]["prev_hash"] == appended[-1].payload_hash


async def test_the_database_refuses_a_record_that_breaks_the_chain(
    store: Store, db_path: Path
) -> None:
    (record,) = await store.append_records(events(1))
    with raw(db_path) as conn:
        for seq, payload in [(3, record.payload), (2, record.payload.replace(b"0", b"1"))]:
            with pytest.raises(Exception, match="does not continue the chain"):
                conn.execute(
                    "INSERT INTO records VALUES (?, ?, 'x', ?, '{}', 'h', 't', NULL)",
                    (seq, f"id-{seq}", payload),
                )


async def test_a_full_disk_keeps_the_chain_and_recovers(store: Store, signer: Signer) -> None:
    await store.append_records(events(5))
    conn = store._db._conn  # white box: the only way to make SQLite's file hit a size limit
    (pages,) = next(iter(await conn.execute_fetchall("PRAGMA page_count")))
    await conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreFullError):
        await store.append_records(events(200, 5))
    assert (await store.chain_head()).seq == 5
    await conn.execute("PRAGMA max_page_count = 1073741823")
    await store.append_records(events(3, 5))
    check_chain(await store.unacked(100), signer)


async def test_a_stale_head_is_refused_by_the_database_then_reloaded(
    store: Store, signer: Signer
) -> None:
    await store.append_records(events(2))
    store._outbox._head = ChainHead(1, GENESIS_HASH)  # white box: a lost update
    with pytest.raises(StoreConstraintError):
        await store.append_records(events(1))
    await store.append_records(events(1, 2))
    check_chain(await store.unacked(10), signer)


async def test_a_cancelled_append_still_commits_whole_or_not_at_all(
    store: Store, signer: Signer
) -> None:
    task = asyncio.create_task(store.append_records(events(50)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await store.append_records(events(1, 50))
    stored = await store.unacked(100)
    assert len(stored) in (1, 51)
    check_chain(stored, signer)


async def test_a_record_that_breaks_the_contract_is_refused_and_nothing_is_written(
    store: Store,
) -> None:
    await store.append_records(events(1))
    bad = NewRecord("lock.event", {"lock_id": "front-door", "event": "unlock"})
    with pytest.raises(InvalidRecordError, match=r"record 3 \(lock.event\)"):
        await store.append_records([*events(1, 1), bad])
    assert (await store.chain_head()).seq == 1
    assert [r.seq for r in await store.append_records(events(1, 2))] == [2]
