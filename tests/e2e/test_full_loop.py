"""The whole system over a real broker: cloud window -> hub -> courier -> PoD -> cloud -> ack."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cloud_sync.daemon import Cloud
from cloud_sync.protocol.chain import verify_chain
from cloud_sync.protocol.messages import rfc3339
from gateway.daemon import Hub

from .conftest import HUB_ID, Deployment, eventually

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


async def open_window(cloud: Cloud, hub: Hub, task_id: str, max_uses: int | None) -> str:
    """Create a window through the cloud service, publish it, wait until the hub holds it."""
    now = datetime.now(UTC)
    view, code, outgoing = await cloud.service.create_window(
        "acme",
        task_id,
        hub_id=HUB_ID,
        lock_id="front-door",
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=1),
        max_uses=max_uses,
    )
    cloud.worker.publish_later(outgoing)

    async def applied() -> bool:
        return hub.engine.cache.get(view.window_id) is not None

    await eventually(applied, "the hub to apply the window")
    return code


async def hub_outbox_empty(hub: Hub) -> bool:
    return await hub.store.outbox_depth() == 0


async def test_a_delivery_flows_from_the_cloud_to_the_door_and_back(
    deployment: Deployment,
) -> None:
    cloud = await deployment.start_cloud()
    hub = await deployment.start_hub()
    api, key = await deployment.serve_cloud_api()
    now = datetime.now(UTC)
    request = {
        "task_id": "task-1",
        "hub_id": HUB_ID,
        "lock_id": "front-door",
        "max_uses": 1,
        "starts_at": rfc3339(now - timedelta(minutes=1)),
        "ends_at": rfc3339(now + timedelta(hours=1)),
    }
    assert deployment.http is not None
    async with deployment.http.post(
        f"{api}/v1/acme/locks/access-windows",
        json=request,
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        assert response.status == 201
        created = await response.json()
    code = created["code"]

    async def applied() -> bool:
        return hub.engine.cache.get(created["window_id"]) is not None

    await eventually(applied, "the hub to apply the window the cloud API created")

    status, body = await deployment.unlock(code)
    assert status == 200

    async def delivered() -> bool:
        return (await cloud.service.get_task("acme", "task-1")).status == "delivered"

    await eventually(delivered, "the cloud to mark the task delivered")
    task = await cloud.service.get_task("acme", "task-1")
    assert task.pod is not None
    assert task.pod.pod_id == body["pod_id"]
    await eventually(lambda: hub_outbox_empty(hub), "the cloud's ack to empty the hub's outbox")

    async def used() -> bool:
        view = await cloud.service.get_window("acme", body["window_id"])
        return view.hub_status == "used"

    await eventually(used, "the hub's window.status to reach the cloud")
    assert code not in json.dumps([r.payload.decode() for r in await cloud.store.records(HUB_ID)])


async def test_deliveries_made_while_the_broker_is_down_arrive_exactly_once_in_order(
    deployment: Deployment,
) -> None:
    cloud = await deployment.start_cloud()
    hub = await deployment.start_hub()
    code = await open_window(cloud, hub, "task-2", max_uses=None)
    await eventually(lambda: hub_outbox_empty(hub), "the first records to be acked")

    deployment.broker.stop()
    for _ in range(1000):
        status, _ = await deployment.unlock(code)
        assert status == 200  # the hub works offline
    deployment.broker.start()

    head = await hub.store.chain_head()

    async def all_arrived() -> bool:
        # The hub goes on recording (the lock relocks), so the cloud may hold more.
        state = await cloud.store.chain_state(HUB_ID)
        return state.next_seq > head.seq

    await eventually(all_arrived, "every record to reach the cloud and chain")
    stored = await cloud.store.records(HUB_ID)
    seqs = [r.seq for r in stored]
    assert seqs == list(range(1, len(seqs) + 1))  # once each, in order, no gap
    assert len(seqs) >= head.seq
    verify_chain([r.payload for r in stored])
    pods = [r for r in stored if r.type == "pod.recorded"]
    assert len(pods) == 1000
    await eventually(lambda: hub_outbox_empty(hub), "the acks to empty the hub's outbox")


async def test_two_cloud_workers_on_one_shared_subscription_store_every_record_once(
    deployment: Deployment,
) -> None:
    first = await deployment.start_cloud("lockhub-cloud")
    second = await deployment.start_cloud("lockhub-cloud-2")
    hub = await deployment.start_hub()
    code = await open_window(first, hub, "task-3", max_uses=None)
    # A backlog, so both workers get a share when it drains. The hub stays off until both
    # workers are back: the first to reconnect would otherwise take every batch alone.
    await deployment.stop_link()
    deployment.broker.stop()
    for _ in range(300):
        assert (await deployment.unlock(code))[0] == 200

    async def workers(up: bool) -> bool:
        return first.worker.connected is up and second.worker.connected is up

    await eventually(lambda: workers(up=False), "both workers to see the broker go")
    deployment.broker.start()
    await eventually(lambda: workers(up=True), "both workers to subscribe again")
    deployment.start_link()
    head = await hub.store.chain_head()

    async def all_arrived() -> bool:
        return (await first.store.chain_state(HUB_ID)).next_seq > head.seq

    await eventually(all_arrived, "every record to reach the cloud and chain")
    await eventually(lambda: hub_outbox_empty(hub), "the acks to empty the hub's outbox")
    # The hub goes on recording (the lock relocks): stop its link so the count holds still.
    # A batch already at the broker still arrives, hence eventually; a record stored by
    # both workers would keep the sum above the count for good.
    await deployment.stop_link()

    async def each_counted_once() -> bool:
        stored = await first.store.records(HUB_ID)
        return first.worker.ingested + second.worker.ingested == len(stored)

    await eventually(each_counted_once, "each stored record to be counted by one worker")
    stored = await first.store.records(HUB_ID)
    seqs = [r.seq for r in stored]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= head.seq
    verify_chain([r.payload for r in stored])
    assert first.worker.ingested > 0
    assert second.worker.ingested > 0  # the shared subscription split the work
