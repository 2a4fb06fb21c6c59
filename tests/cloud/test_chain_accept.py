"""A broken chain holds records back, loudly; ``accept_chain`` re-anchors it, applies them once."""

from __future__ import annotations

import asyncio

import pytest

from cloud_sync.errors import ConflictError, InvalidRequestError, UnknownHubError
from cloud_sync.protocol.b64 import b64url_decode
from cloud_sync.protocol.chain import payload_hash
from cloud_sync.protocol.envelope import Envelope
from cloud_sync.service import CloudService
from cloud_sync.store import AlertRow, CloudStore
from tests.cloud.conftest import HUB_ID, TENANT, HubChain
from tests.cloud.test_ingest import seqs
from tests.cloud.test_sync import pod_body
from tests.cloud.test_windows import make_window

EVENT = {"lock_id": "front-door", "event": "locked", "unattributed": False, "details": {}}


def kinds(alerts: list[AlertRow]) -> list[str]:
    return [a.kind for a in alerts]


async def forge_break(store: CloudStore, chain: HubChain) -> Envelope:
    """Two good records, then one whose prev_hash is wrong: the chain breaks at that one."""
    await store.ingest(HUB_ID, chain.events(2))
    forged = chain.record("lock.event", EVENT, prev_hash="f" * 64)
    assert (await store.ingest(HUB_ID, [forged])).broken_at == chain.seq
    return forged


async def test_a_pod_held_back_delivers_once_the_chain_is_accepted(
    service: CloudService, chain: HubChain
) -> None:
    store = service.store
    view, _, _ = await make_window(service)
    await forge_break(store, chain)
    pod = pod_body(view.window_id)
    status = {"window_id": view.window_id, "version": 1, "status": "applied", "detail": None}
    later = [chain.record("pod.recorded", pod), chain.record("window.status", status)]
    held = await store.ingest(HUB_ID, later)
    assert (held.stored, held.acked, held.chained, held.held) == (2, [(4, 5)], 0, 2)
    assert (await service.get_task(TENANT, "task-1")).status == "pending"
    assert (await service.get_window(TENANT, view.window_id)).hub_status is None
    held_alerts = [a for a in await store.alerts(HUB_ID) if a.kind == "chain_held"]
    assert [(a.details or {}).get("type") for a in held_alerts] == [
        "lock.event", "pod.recorded", "window.status"
    ]  # fmt: skip

    done = await store.accept_chain(HUB_ID, 3)
    assert (done.from_seq, done.chained, done.next_seq, done.broken_at) == (3, 3, 6, None)
    assert (done.superseded, done.superseded_epoch) == (0, None)
    task = await service.get_task(TENANT, "task-1")
    assert task.status == "delivered"
    assert task.pod is not None
    assert task.pod.pod_id == pod["pod_id"]
    assert (await service.get_window(TENANT, view.window_id)).hub_status == "applied"
    state = await store.chain_state(HUB_ID)
    assert (state.next_seq, state.last_hash, state.broken_seq) == (6, chain.prev_hash, None)
    assert kinds(await store.alerts(HUB_ID))[-1] == "chain_accepted"
    # Exactly once: a second accept is refused, a resend is a duplicate, and the chain
    # goes on from where it was accepted.
    with pytest.raises(ConflictError, match="not broken"):
        await store.accept_chain(HUB_ID, 3)
    again = await store.ingest(HUB_ID, later)
    assert (again.stored, again.duplicates, again.chained, again.acked) == (0, 2, 0, [(4, 5)])
    assert (await store.ingest(HUB_ID, chain.events(1))).chained == 1
    assert seqs(await store.records(HUB_ID)) == [(1, s, True) for s in range(1, 7)]


async def test_a_hub_restored_from_an_old_database_is_taken_back(
    service: CloudService, chain: HubChain
) -> None:
    """The restore docs/operations.md describes: the hub rewrites seqs the cloud chained."""
    store = service.store
    view, _, _ = await make_window(service)
    old = chain.events(5)
    await store.ingest(HUB_ID, old)
    # The restored hub.db ends at seq 3: its next records reuse seqs 4 and 5.
    chain.seq, chain.prev_hash = 3, payload_hash(store_payload(old[2]))
    rewritten = [*chain.events(2), chain.record("pod.recorded", pod_body(view.window_id))]
    refused = await store.ingest(HUB_ID, rewritten)
    assert (refused.conflicts, refused.acked, refused.broken_at, refused.held) == (
        [4, 5], [(6, 6)], 4, 1
    )  # fmt: skip
    assert (await service.get_task(TENANT, "task-1")).status == "pending"

    done = await store.accept_chain(HUB_ID, 4)
    assert (done.superseded, done.superseded_epoch, done.chained, done.next_seq) == (2, -1, 0, 4)
    # The hub resends what was never acked: now it is stored, chained and applied.
    resent = await store.ingest(HUB_ID, rewritten)
    assert (resent.stored, resent.duplicates, resent.chained, resent.acked) == (2, 1, 3, [(4, 6)])
    assert (await service.get_task(TENANT, "task-1")).status == "delivered"
    assert seqs(await store.records(HUB_ID, epoch=1)) == [(1, s, True) for s in range(1, 7)]
    moved = await store.records(HUB_ID, epoch=-1)
    assert [(r.seq, r.chained) for r in moved] == [(4, True), (5, True)]
    assert [r.payload for r in moved] == [store_payload(e) for e in old[3:]]


def store_payload(envelope: Envelope) -> bytes:
    """The signed payload bytes of ``envelope``, as the store keeps them."""
    return b64url_decode(str(envelope["payload"]))


async def test_a_second_break_after_the_accepted_seq_is_reported_again(
    service: CloudService, chain: HubChain
) -> None:
    store = service.store
    await forge_break(store, chain)
    good = chain.events(1)
    second = chain.record("lock.event", EVENT, prev_hash="e" * 64)
    await store.ingest(HUB_ID, [*good, second])
    done = await store.accept_chain(HUB_ID, 3)
    assert (done.chained, done.next_seq, done.broken_at) == (2, 5, 5)
    breaks = [a for a in await store.alerts(HUB_ID) if a.kind == "chain_broken"]
    assert [(a.details or {}).get("seq") for a in breaks] == [3, 5]
    assert (await store.chain_state(HUB_ID)).broken_seq == 5


@pytest.mark.usefixtures("service")
async def test_accept_chain_refuses_what_it_cannot_do(store: CloudStore, chain: HubChain) -> None:
    await store.ingest(HUB_ID, chain.events(1))
    with pytest.raises(ConflictError, match="not broken"):
        await store.accept_chain(HUB_ID, 2)
    with pytest.raises(UnknownHubError):
        await store.accept_chain("hub-9999", 1)
    await store.ingest(HUB_ID, chain.events(1))
    await forge_break(store, chain)  # seqs 3, 4 good; 5 forged
    with pytest.raises(InvalidRequestError, match="at least 5"):
        await store.accept_chain(HUB_ID, 4)
    with pytest.raises(InvalidRequestError, match="nothing to anchor to"):
        await store.accept_chain(HUB_ID, 7)
    assert (await store.chain_state(HUB_ID)).broken_seq == 5


@pytest.mark.usefixtures("service")
async def test_accept_and_ingest_at_once_apply_each_record_once(
    store: CloudStore, chain: HubChain
) -> None:
    await forge_break(store, chain)
    alerts = [chain.alert(f"held-{i}") for i in range(3)]
    await store.ingest(HUB_ID, alerts)
    # A worker handles the hub's resend while the operator accepts: the chain row's lock
    # puts one after the other, and each hub.alert becomes one alert.
    done, resent = await asyncio.gather(
        store.accept_chain(HUB_ID, 3), store.ingest(HUB_ID, [*alerts, *chain.events(1)])
    )
    assert done.chained + resent.chained == 5
    kinds_now = kinds(await store.alerts(HUB_ID))
    assert [k for k in kinds_now if k.startswith("held-")] == ["held-0", "held-1", "held-2"]
    assert (await store.chain_state(HUB_ID)).next_seq == 8


@pytest.mark.usefixtures("service")
async def test_a_break_behind_a_long_wait_holds_back_every_record(
    store: CloudStore, chain: HubChain
) -> None:
    """More records wait past a gap than one statement can alert on at once."""
    first, gap = chain.events(1), chain.record("lock.event", EVENT, prev_hash="f" * 64)
    waiting = chain.events(600)
    await store.ingest(HUB_ID, first)
    for start in range(0, len(waiting), 100):
        assert (await store.ingest(HUB_ID, waiting[start : start + 100])).held == 0
    broke = await store.ingest(HUB_ID, [gap])
    assert (broke.broken_at, broke.held) == (2, 601)
    assert kinds(await store.alerts(HUB_ID)).count("chain_held") == 601
    done = await store.accept_chain(HUB_ID, 2)
    assert (done.chained, done.next_seq) == (601, 603)
