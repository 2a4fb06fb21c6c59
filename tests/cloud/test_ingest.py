"""Ingest: verify, store once, ack, chain over gaps and reorders, detect breaks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.errors import UnknownHubError
from cloud_sync.protocol.b64 import b64url_decode, b64url_encode
from cloud_sync.protocol.chain import payload_hash
from cloud_sync.protocol.envelope import Signer
from cloud_sync.service import CloudService
from cloud_sync.store import CloudStore
from gateway.store import Store
from gateway.testing import lock_event_record

from .conftest import HUB_ID, HubChain, SettableClock


def seqs(records: list[object]) -> list[tuple[int, int, bool]]:
    return [(r.epoch, r.seq, r.chained) for r in records]  # type: ignore[attr-defined]


@pytest.mark.usefixtures("service")
async def test_same_batch_twice_is_stored_once_and_acked_both_times(
    store: CloudStore, chain: HubChain
) -> None:
    batch = chain.events(3)
    first = await store.ingest(HUB_ID, batch)
    again = await store.ingest(HUB_ID, batch + batch[:1])
    assert (first.stored, first.duplicates, first.chained, first.acked) == (3, 0, 3, [(1, 3)])
    assert (again.stored, again.duplicates, again.chained, again.acked) == (0, 3, 0, [(1, 3)])
    stored = await store.records(HUB_ID)
    assert seqs(stored) == [(1, 1, True), (1, 2, True), (1, 3, True)]
    assert [r.payload for r in stored] == [b64url_decode(e["payload"]) for e in batch]
    state = await store.chain_state(HUB_ID)
    assert (state.next_seq, state.last_hash) == (4, chain.prev_hash)


@pytest.mark.usefixtures("service")
async def test_reordered_records_chain_once_the_order_is_complete(
    store: CloudStore, chain: HubChain
) -> None:
    one, two, three = chain.events(3)
    results = [await store.ingest(HUB_ID, [envelope]) for envelope in (three, one, two)]
    assert [r.chained for r in results] == [0, 1, 2]
    assert [r.acked for r in results] == [[(3, 3)], [(1, 1)], [(2, 2)]]
    assert seqs(await store.records(HUB_ID)) == [(1, 1, True), (1, 2, True), (1, 3, True)]


@pytest.mark.usefixtures("service")
async def test_a_gap_is_waited_out(store: CloudStore, chain: HubChain) -> None:
    batch = chain.events(5)
    result = await store.ingest(HUB_ID, [batch[0], batch[1], batch[3], batch[4]])
    assert (result.chained, result.acked) == (2, [(1, 2), (4, 5)])
    assert (await store.chain_state(HUB_ID)).next_seq == 3
    filled = await store.ingest(HUB_ID, [batch[2]])
    assert (filled.chained, filled.acked, filled.broken_at) == (3, [(3, 3)], None)
    assert (await store.chain_state(HUB_ID)).next_seq == 6
    assert await store.alerts(HUB_ID) == []


@pytest.mark.usefixtures("service")
async def test_tampered_and_foreign_records_are_refused(store: CloudStore, chain: HubChain) -> None:
    good, bad = chain.events(2)
    payload = json.loads(b64url_decode(bad["payload"]))
    payload["body"]["event"] = "unlocked"
    tampered = {**bad, "payload": b64url_encode(json.dumps(payload).encode())}
    stranger = HubChain(Signer(HUB_ID, Ed25519PrivateKey.generate())).events(1)[0]
    result = await store.ingest(HUB_ID, [good, tampered, stranger, {"not": "an envelope"}])
    assert [r.index for r in result.rejected] == [1, 2, 3]
    assert all(r.reason.startswith(("SignatureError", "MalformedError")) for r in result.rejected)
    assert (result.stored, result.acked) == (1, [(1, 1)])


@pytest.mark.usefixtures("service")
async def test_records_of_another_hub_id_are_refused(store: CloudStore, chain: HubChain) -> None:
    # Signed by this hub's key but posted on another hub's topic.
    other = await store.add_hub("hub-0002", "A" * 43, "A" * 43)
    result = await store.ingest(other.hub_id, chain.events(1))
    assert [r.reason.split(":")[0] for r in result.rejected] == ["UnknownKeyError"]


async def test_unknown_hub_is_an_error(store: CloudStore, chain: HubChain) -> None:
    with pytest.raises(UnknownHubError):
        await store.ingest("hub-9999", chain.events(1))


@pytest.mark.usefixtures("service")
async def test_forged_prev_hash_breaks_the_chain_once(store: CloudStore, chain: HubChain) -> None:
    await store.ingest(HUB_ID, chain.events(2))
    forged = chain.record(
        "lock.event",
        {"lock_id": "front-door", "event": "locked", "unattributed": False, "details": {}},
        prev_hash="f" * 64,
    )
    result = await store.ingest(HUB_ID, [forged])
    later = await store.ingest(HUB_ID, chain.events(2))
    assert (result.stored, result.acked, result.broken_at, result.held) == (1, [(3, 3)], 3, 1)
    assert (later.chained, later.acked, later.broken_at, later.held) == (0, [(4, 5)], 3, 2)
    alerts = await store.alerts(HUB_ID)
    assert [(a.kind, a.severity) for a in alerts] == [("chain_broken", "critical")] + [
        ("chain_held", "warning")
    ] * 3
    assert alerts[0].details == {"epoch": 1, "seq": 3, "problem": "prev_hash mismatch"}
    assert [a.details["seq"] for a in alerts[1:] if a.details] == [3, 4, 5]
    assert (await store.chain_state(HUB_ID)).next_seq == 3
    # Another record for a chained seq: refused (not stored, so not held), and no second alert.
    chain.seq, chain.prev_hash = 0, "0" * 64
    conflict = await store.ingest(HUB_ID, chain.events(1))
    assert (conflict.conflicts, conflict.acked, conflict.held) == ([1], [], 0)
    assert len(await store.alerts()) == 4
    assert [r.seq for r in await store.records(HUB_ID, epoch=1)] == [1, 2, 3, 4, 5]


@pytest.mark.usefixtures("service")
async def test_alerts_and_lockouts_become_alerts(store: CloudStore, chain: HubChain) -> None:
    lockout = {
        "lock_id": "front-door", "source": "api:192.0.2.10", "failures": 5,
        "locked_until": "2026-03-01T12:00:30.000Z", "level": 1,
    }  # fmt: skip
    batch = [chain.alert("lock_jammed"), chain.record("access.lockout", lockout)]
    await store.ingest(HUB_ID, batch)
    await store.ingest(HUB_ID, batch)
    alerts = await store.alerts(HUB_ID)
    assert [(a.kind, a.severity) for a in alerts] == [
        ("lock_jammed", "warning"),
        ("access.lockout", "warning"),
    ]
    assert alerts[1].details is not None
    assert alerts[1].details["locked_until"] == "2026-03-01T12:00:30.000Z"


@pytest.mark.usefixtures("service")
async def test_overlapping_concurrent_ingests_store_each_record_once(
    store: CloudStore, chain: HubChain
) -> None:
    batch = chain.events(40)
    results = await asyncio.gather(
        store.ingest(HUB_ID, batch[:30]),
        store.ingest(HUB_ID, batch[10:]),
        store.ingest(HUB_ID, batch[5:25]),
    )
    assert sum(r.stored for r in results) == 40
    assert sum(r.chained for r in results) == 40
    assert [r.acked for r in results] == [[(1, 30)], [(11, 40)], [(6, 25)]]
    stored = await store.records(HUB_ID)
    assert [r.seq for r in stored] == list(range(1, 41))
    assert all(r.chained for r in stored)
    assert (await store.chain_state(HUB_ID)).last_hash == chain.prev_hash


async def test_records_made_by_the_hub_store_ingest_and_chain(
    store: CloudStore, service: CloudService, chain: HubChain, clock: SettableClock, tmp_path: Path
) -> None:
    path = tmp_path / "hub.db"
    async with await Store.open(path, signer=chain.signer, hub_id=HUB_ID, now=clock) as hub:
        await hub.append_records([lock_event_record(n) for n in range(5)])
        outbox = await hub.unacked(100)
        result = await store.ingest(HUB_ID, [r.envelope for r in outbox])
        assert (result.chained, result.acked) == (5, [(1, 5)])
        assert await hub.ack(result.acked) == 5
    assert (await store.chain_state(HUB_ID)).last_hash == payload_hash(outbox[-1].payload)
    assert service.store is store
    record = (await store.records(HUB_ID))[0]
    assert record.received_at == clock()
