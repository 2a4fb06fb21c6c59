"""Chain restarts after a hub quarantined its store: a new epoch, and only then."""

from __future__ import annotations

import pytest

from cloud_sync.store import CloudStore

from .conftest import HUB_ID, HubChain

pytestmark = pytest.mark.usefixtures("service")


async def test_quarantine_alert_starts_a_new_epoch(store: CloudStore, chain: HubChain) -> None:
    old = chain.events(3)
    await store.ingest(HUB_ID, old)
    restart = chain.restart()
    result = await store.ingest(HUB_ID, [restart, *chain.events(2)])
    assert (result.new_epoch, result.epoch, result.chained, result.acked) == (True, 2, 3, [(1, 3)])
    again = await store.ingest(HUB_ID, [restart])
    assert (again.new_epoch, again.duplicates, again.acked) == (False, 1, [(1, 1)])
    # A late copy of an old-epoch record names a seq the hub now uses for another record.
    stale = await store.ingest(HUB_ID, old[:1])
    assert (stale.duplicates, stale.acked) == (1, [])
    stored = await store.records(HUB_ID)
    assert [(r.epoch, r.seq, r.chained) for r in stored] == [
        (1, 1, True), (1, 2, True), (1, 3, True), (2, 1, True), (2, 2, True), (2, 3, True),
    ]  # fmt: skip
    state = await store.chain_state(HUB_ID)
    assert (state.epoch, state.next_seq, state.broken_seq) == (2, 4, None)
    assert [a.kind for a in await store.alerts(HUB_ID)] == ["store.quarantined"]


async def test_a_first_record_that_is_the_quarantine_alert_needs_no_new_epoch(
    store: CloudStore, chain: HubChain
) -> None:
    result = await store.ingest(HUB_ID, [chain.restart(), *chain.events(1)])
    assert (result.new_epoch, result.epoch, result.chained) == (False, 1, 2)


async def test_a_restart_without_the_alert_breaks_the_chain(
    store: CloudStore, chain: HubChain
) -> None:
    await store.ingest(HUB_ID, chain.events(3))
    chain.seq, chain.prev_hash = 0, "0" * 64
    result = await store.ingest(HUB_ID, chain.events(1))
    assert (result.new_epoch, result.conflicts, result.acked, result.broken_at) == (
        False, [1], [], 1,
    )  # fmt: skip
    alerts = await store.alerts(HUB_ID)
    assert [a.kind for a in alerts] == ["chain_broken"]
    assert alerts[0].details == {
        "epoch": 1, "seq": 1, "problem": "a different record for a seq already chained",
    }  # fmt: skip


async def test_records_of_a_new_chain_stored_before_its_first_are_adopted(
    store: CloudStore, chain: HubChain
) -> None:
    await store.ingest(HUB_ID, chain.events(2))
    restart = chain.restart()
    early = chain.events(4)  # seqs 2..5 of the new chain
    first = await store.ingest(HUB_ID, early[1:])  # seqs 3..5 land in the old epoch, unchained
    assert (first.epoch, first.chained, first.acked) == (1, 0, [(3, 5)])
    second = await store.ingest(HUB_ID, [restart, early[0]])
    assert (second.new_epoch, second.epoch, second.chained) == (True, 2, 5)
    stored = await store.records(HUB_ID)
    assert [(r.epoch, r.seq) for r in stored] == [(1, 1), (1, 2), *((2, n) for n in range(1, 6))]
    assert all(r.chained for r in stored)
    assert (await store.chain_state(HUB_ID)).last_hash == chain.prev_hash
