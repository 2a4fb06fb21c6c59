"""Faults, each in a loop, over real processes: zero lost and zero duplicated in the cloud.

Every test ends the same way (``Site.verify``): the hub's outbox drains, the cloud's chain
reaches the hub's head, and then the cloud holds seq 1..N once each, the chain verifies,
every pod the hub's API answered 200 for is stored exactly once, and the hub's SQLite passes
integrity_check. ``pytest -s`` prints each loop's figures; LOCKHUB_FAULT_ROUNDS=N runs more.
"""

from __future__ import annotations

import asyncio
import random

import paho.mqtt.client as paho
import pytest

from cloud_sync.protocol import topics
from tests.infra.services import free_port

from .deployment import ROUNDS, SETTLE_SECONDS, Site
from .processes import Unlocker
from .stores import HUB_ID, hub_envelopes, stored_count

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

# Unlocks made while the cloud is down: a backlog of many 20-record messages to interrupt.
BACKLOG = 300
# Unlocks per round of the duplicates loop.
REORDER_RECORDS = 60
PREFIX = "lockhub/v1"


async def running_site(site: Site, task_id: str) -> Unlocker:
    """Start the cloud and the hub, open a window; an unlocker holding its code."""
    await site.start_cloud()
    await site.start_hub()
    code = await site.open_window(task_id)
    return Unlocker(site.unlock_url, code)


@pytest.mark.timeout(SETTLE_SECONDS + 120)
async def test_hub_sigkill_mid_stream_loses_and_duplicates_nothing(site: Site) -> None:
    unlocker = await running_site(site, "task-hub-kill")
    stop = asyncio.Event()
    courier = asyncio.create_task(unlocker.run(stop))
    try:
        for _ in range(ROUNDS):
            await asyncio.sleep(random.uniform(0.3, 1.5))  # records flowing to the cloud
            site.hub.kill()
            await asyncio.sleep(random.uniform(0.0, 0.3))
            await site.start_hub()
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await courier
    await site.verify("hub SIGKILL mid-stream", ROUNDS, unlocker)


async def kill_during_ingest(site: Site) -> None:
    """Start the cloud and SIGKILL it once it stored part of the hub's backlog."""
    before = await stored_count(site.database_url)
    await site.start_cloud(wait=False)
    # Holes left by the previous kill can fill the hub's send window; then nothing new comes
    # until the hub's stall resend (see SETTLE_SECONDS).
    deadline = asyncio.get_running_loop().time() + SETTLE_SECONDS
    while await stored_count(site.database_url) <= before:
        site.cloud.check_alive()
        assert asyncio.get_running_loop().time() < deadline, site.cloud.tail()
        await asyncio.sleep(0.01)
    await asyncio.sleep(random.uniform(0.0, 0.2))
    site.cloud.kill()


@pytest.mark.timeout(SETTLE_SECONDS * (ROUNDS + 1) + 120)
async def test_cloud_sigkill_mid_ingest_loses_and_duplicates_nothing(site: Site) -> None:
    unlocker = await running_site(site, "task-cloud-kill")
    assert site.store is not None
    for _ in range(ROUNDS):
        site.cloud.kill()
        await unlocker.burst(BACKLOG)  # the hub works on; its outbox grows
        await kill_during_ingest(site)
    await site.start_cloud()
    await site.verify("cloud SIGKILL mid-ingest", ROUNDS, unlocker)


@pytest.mark.timeout(SETTLE_SECONDS + 120)
async def test_broker_restarts_lose_and_duplicate_nothing(site: Site) -> None:
    unlocker = await running_site(site, "task-broker")
    stop = asyncio.Event()
    courier = asyncio.create_task(unlocker.run(stop))
    try:
        for round_ in range(ROUNDS):
            await asyncio.sleep(random.uniform(0.3, 1.0))
            if round_ % 2 == 0:
                site.broker.restart()  # SIGTERM: mosquitto saves its sessions
            else:
                site.broker.kill()  # SIGKILL: unsaved sessions and queued messages are gone
                await asyncio.sleep(random.uniform(0.0, 0.5))
                site.broker.start()
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await courier
    await site.verify("broker restarts", ROUNDS, unlocker)


def publish_as_hub(url_port: int, batches: list[list[str]]) -> None:
    """Publish record batches to the hub's ``up/records`` with QoS 1, as the hub would."""
    # paho re-exports CallbackAPIVersion without listing it in __all__.
    version = paho.CallbackAPIVersion.VERSION2  # type: ignore[attr-defined]
    client = paho.Client(version, client_id="faults-replayer")
    client.connect("127.0.0.1", url_port)
    client.loop_start()
    try:
        topic = topics.topic(PREFIX, HUB_ID, topics.Channel.RECORDS)
        for batch in batches:
            info = client.publish(topic, "[" + ",".join(batch) + "]", qos=1)
            info.wait_for_publish(10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def shuffled_batches(fresh: list[str], seen: list[str], size: int) -> list[list[str]]:
    """Every fresh envelope twice or three times, some already stored ones again, all in a
    random order and cut into random batches."""
    pool = (
        fresh * 2
        + random.sample(fresh, k=len(fresh) // 2)
        + random.sample(seen, k=min(10, len(seen)))
    )
    random.shuffle(pool)
    batches, start = [], 0
    while start < len(pool):
        n = random.randint(1, size)
        batches.append(pool[start : start + n])
        start += n
    return batches


@pytest.mark.timeout(SETTLE_SECONDS + 120)
async def test_duplicated_and_reordered_batches_are_stored_once(site: Site) -> None:
    unlocker = await running_site(site, "task-reorder")
    assert site.store is not None
    await site.settle()
    site.hub.stop()
    # The hub runs cut off from the broker: its records reach the cloud only as we replay them.
    nowhere = {"LOCKHUB_MQTT__URL": f"mqtt://127.0.0.1:{free_port()}"}
    replayed = 0
    for _ in range(ROUNDS):
        stored = (await site.store.chain_state(HUB_ID)).next_seq - 1
        await site.start_hub(nowhere)
        await unlocker.burst(REORDER_RECORDS)
        assert site.hub.stop() == 0
        rows = hub_envelopes(site.hub_db, 0)
        fresh = [envelope for seq, envelope in rows if seq > stored]
        seen = [envelope for seq, envelope in rows if seq <= stored]
        batches = shuffled_batches(fresh, seen, size=25)
        await asyncio.to_thread(publish_as_hub, site.broker.port, batches)
        replayed += sum(len(b) for b in batches)
        head = rows[-1][0]

        async def chained(head: int = head) -> bool:
            return (await site.store.chain_state(HUB_ID)).next_seq == head + 1  # type: ignore[union-attr]

        deadline = asyncio.get_running_loop().time() + 30
        while not await chained():
            site.cloud.check_alive()
            assert asyncio.get_running_loop().time() < deadline, "replayed records not chained"
            await asyncio.sleep(0.05)
    print(f"[faults] duplicates and reorders: envelopes replayed={replayed}")
    # Back on the broker, the hub resends its unacked outbox: all duplicates by now.
    await site.start_hub()
    await site.verify("duplicates and reorders", ROUNDS, unlocker)
