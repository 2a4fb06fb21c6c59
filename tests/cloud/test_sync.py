"""What hubs report changes the cloud (PoD, window status); resyncs and acks they accept."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cloud_sync.protocol.commands import WindowsSync
from cloud_sync.protocol.envelope import Signer, decode_batch, verify
from cloud_sync.protocol.ids import new_ulid
from cloud_sync.protocol.messages import hello_payload, window_set_digest
from cloud_sync.protocol.policy import accept_ack, accept_hello
from cloud_sync.protocol.topics import Channel, parse_topic
from cloud_sync.service import CloudService

from .conftest import HUB_ID, START, TENANT, HubChain, SettableClock
from .test_windows import hub_accepts, make_window


def pod_body(window_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "pod_id": new_ulid(), "window_id": window_id, "task_id": "task-1",
        "tenant_id": TENANT, "lock_id": "front-door", "method": "hub_code",
        "credential_ref": f"window:{window_id}", "unlocked_at": "2026-03-01T12:05:00.000Z",
        "relocked_at": None, "lock_event": {"vendor": "sim", "type": "unlocked"}, **changes,
    }  # fmt: skip


async def test_a_pod_delivers_its_task(service: CloudService, chain: HubChain) -> None:
    view, _, _ = await make_window(service)
    first, second = pod_body(view.window_id), pod_body(view.window_id)
    batch = [chain.record("pod.recorded", first), chain.record("pod.recorded", second)]
    await service.store.ingest(HUB_ID, batch)
    await service.store.ingest(HUB_ID, batch)
    task = await service.get_task(TENANT, "task-1")
    assert (task.status, task.delivered_at) == ("delivered", START + timedelta(minutes=5))
    assert task.pod is not None
    assert (task.pod.pod_id, task.pod.seq, task.pod.method) == (first["pod_id"], 1, "hub_code")
    assert task.pod.body["credential_ref"] == f"window:{view.window_id}"
    assert await service.store.get_pod(second["pod_id"]) is not None
    assert await service.store.alerts(HUB_ID) == []


async def test_a_pod_for_a_window_the_hub_does_not_hold_delivers_nothing(
    service: CloudService, chain: HubChain
) -> None:
    view, _, _ = await make_window(service)
    forged = pod_body(view.window_id, tenant_id="tenant-b")
    await service.store.ingest(HUB_ID, [chain.record("pod.recorded", forged)])
    assert (await service.get_task(TENANT, "task-1")).status == "pending"
    assert [a.kind for a in await service.store.alerts(HUB_ID)] == ["pod_unmatched"]


async def test_window_status_is_shown_on_the_window(service: CloudService, chain: HubChain) -> None:
    view, _, _ = await make_window(service)
    status = {"window_id": view.window_id, "version": 1, "status": "set_on_lock", "detail": None}
    await service.store.ingest(HUB_ID, [chain.record("window.status", status)])
    shown = await service.get_window(TENANT, view.window_id)
    assert (shown.hub_status, shown.hub_version, shown.hub_status_at) == ("set_on_lock", 1, START)


async def test_resync_sends_the_desired_set_in_pages(
    service: CloudService, cloud_signer: Signer, hub_keys: Any, clock: SettableClock
) -> None:
    made = [await make_window(service) for _ in range(102)]
    revoked = made[0][0].window_id
    await service.revoke_window(TENANT, revoked)
    await make_window(
        service, starts_at=START - timedelta(hours=2), ends_at=START + timedelta(seconds=1)
    )
    clock.advance(2)  # the last window has ended: not part of the set
    out = await service.resync(HUB_ID)
    syncs = hub_accepts(out, cloud_signer, clock)
    assert all(isinstance(s, WindowsSync) for s in syncs)
    bodies = [s.body for s in syncs if isinstance(s, WindowsSync)]
    assert [(b.page, b.pages, len(b.windows)) for b in bodies] == [(1, 2, 100), (2, 2, 1)]
    assert {b.set_version for b in bodies} == {syncs[0].seq}
    listed = {w.window_id for b in bodies for w in b.windows}
    assert listed == {view.window_id for view, _, _ in made[1:]}
    pairs = [(w.window_id, w.version) for b in bodies for w in b.windows]
    hello = hello_payload(
        hub_id=HUB_ID, seq=0, issued_at=clock(),
        body={"last_command_seq": {}, "window_set_digest": window_set_digest(pairs),
              "software_version": "0.1.0"},
    )  # fmt: skip
    verified = verify(
        Signer(HUB_ID, hub_keys.signing).sign(hello), {HUB_ID: hub_keys.signing.public_key()}
    )
    assert await service.resync(HUB_ID, accept_hello(verified, hub_id=HUB_ID)) == []


async def test_resync_of_an_empty_set_is_one_empty_page(
    service: CloudService, cloud_signer: Signer, clock: SettableClock
) -> None:
    [sync] = hub_accepts(await service.resync(HUB_ID), cloud_signer, clock)
    assert isinstance(sync, WindowsSync)
    assert (sync.body.page, sync.body.pages, sync.body.windows) == (1, 1, [])


async def test_acks_are_signed_for_the_hub(service: CloudService, cloud_signer: Signer) -> None:
    assert service.ack_command(HUB_ID, []) == []
    ranges = [(n, n) for n in range(1, 1200, 2)]
    [(topic, payload)] = service.ack_command(HUB_ID, ranges)
    assert parse_topic("lockhub/v1", topic) == (HUB_ID, Channel.ACKS)
    keys = {cloud_signer.kid: cloud_signer.key.public_key()}
    acks = [accept_ack(verify(e, keys), hub_id=HUB_ID) for e in decode_batch(payload)]
    assert [len(a.body.acked) for a in acks] == [500, 100]
    assert [r for a in acks for r in a.body.acked] == ranges
