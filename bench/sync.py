"""The MQTT link end to end: backlog drain hub -> cloud, window commands cloud -> hub.

Each scenario starts a private mosquitto (``deployment.broker``), a cloud on SQLite and a hub
with the link's production ``SyncSettings``, and compares with raw paho-mqtt on the same broker
in the same run. Sizes: BACKLOG records and WINDOWS commands (the issue's), or
``LOCKHUB_BENCH_BACKLOG`` / ``LOCKHUB_BENCH_WINDOWS``; tiny ones with ``--quick``.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cloud_sync.daemon import Cloud, build_cloud
from cloud_sync.identity import load_cloud_identity
from cloud_sync.protocol.commands import WindowUpsertBody, command_payload
from cloud_sync.protocol.envelope import encode_batch
from cloud_sync.protocol.fields import dump
from cloud_sync.protocol.ids import new_ulid
from cloud_sync.protocol.keys import load_x25519_public
from cloud_sync.protocol.sealing import seal_code
from cloud_sync.protocol.topics import commands_topic
from cloud_sync.service import Outgoing
from cloud_sync.store import CloudStore
from gateway.daemon import Hub, stop_hub
from gateway.identity import init_identity
from gateway.sync.settings import SyncSettings
from gateway.testing import lock_event_record
from tests.infra.services import MosquittoBroker

from . import rawmqtt
from .deployment import (
    CLOUD_KID,
    HUB_ID,
    PREFIX,
    TENANT,
    broker,
    chains_complete,
    cloud_config,
    make_hub,
    until,
    workers,
)
from .harness import Context, Row, scenario

BACKLOG = 100_000
QUICK_BACKLOG = 500
# Backlog appends per transaction: only the preparation, not measured.
APPEND_BATCH = 1_000
# Padding that brings a lock event to a typical record size (as in the append scenario).
PAD = "x" * 120
WINDOWS = 10_000
QUICK_WINDOWS = 50
# The raw baseline's in-flight QoS 1 window where nothing in ours sets one (paho's default).
PAHO_INFLIGHT = 20
SEED = 20_260_101
Tasks = list[asyncio.Task[Any]]


async def stop(hub: Hub, tasks: Tasks) -> None:
    """Cancel the scenario's tasks, then stop the hub."""
    for task in reversed(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await stop_hub(hub)


def sqlite_url(workdir: Path) -> str:
    """The cloud's SQLite database in ``workdir``."""
    return f"sqlite+aiosqlite:///{workdir}/cloud.db"


async def start(
    workdir: Path, mosquitto: MosquittoBroker, tag: str, settings: SyncSettings
) -> tuple[Cloud, Hub, Tasks]:
    """An in-process cloud worker and a hub with its link, both connected, outbox empty."""
    config = await cloud_config(workdir, mosquitto, sqlite_url(workdir), tag)
    hub = await make_hub(workdir, mosquitto, config, settings)
    cloud = await build_cloud(config)
    assert hub.link is not None
    tasks: Tasks = [asyncio.create_task(cloud.worker.run())]
    tasks += [asyncio.create_task(hub.engine.run()), asyncio.create_task(hub.link.run())]

    async def settled() -> bool:
        return cloud.worker.connected and await hub.store.outbox_depth() == 0

    await until(settled, "the link to connect and its first records to be acked")
    return cloud, hub, tasks


# (a) Backlog drain.


async def _drain(workdir: Path, mosquitto: MosquittoBroker, backlog: int) -> tuple[float, int, int]:
    """Records/s to drain ``backlog`` queued records; the bytes of a full batch and of one."""
    url, settings = sqlite_url(workdir), SyncSettings()
    config = await cloud_config(workdir, mosquitto, url, "drain-1")
    hub = await make_hub(workdir, mosquitto, config, settings)
    tasks: Tasks = []
    try:
        for first in range(0, backlog, APPEND_BATCH):
            last = min(backlog, first + APPEND_BATCH)
            await hub.store.append_records([lock_event_record(n, PAD) for n in range(first, last)])
        sample = await hub.store.unacked(settings.batch_size)
        batch_bytes = len(encode_batch([r.envelope for r in sample]))
        record_bytes = len(encode_batch([sample[-1].envelope]))
        assert hub.link is not None
        async with await CloudStore.open(url) as reader:

            async def drained() -> bool:
                head = (await hub.store.chain_head()).seq
                done = await chains_complete(reader, {HUB_ID: head})
                return done and await hub.store.outbox_depth() == 0

            with workers([config]):
                began = time.perf_counter()
                tasks += [asyncio.create_task(hub.engine.run())]
                tasks += [asyncio.create_task(hub.link.run())]
                end = await until(drained, "the backlog to drain")
    finally:
        await stop(hub, tasks)
    return backlog / (end - began), batch_bytes, record_bytes


@scenario("drain")
def drain(context: Context) -> Iterator[Row]:
    """A hub's queued backlog to the cloud (one worker, SQLite) vs raw paho publishes of as
    many record-sized messages, and of the same bytes as batch-sized messages."""
    workdir = context.workdir / "drain"
    backlog = context.size("BACKLOG", BACKLOG, QUICK_BACKLOG)
    settings = SyncSettings()
    with broker(workdir) as mosquitto:
        ours, batch_size, record_size = asyncio.run(_drain(workdir, mosquitto, backlog))
        # One message per record, as many in flight as the hub's link keeps records out.
        per_record = rawmqtt.throughput(mosquitto.port, backlog, record_size, settings.window)
        batches = math.ceil(backlog / settings.batch_size)
        per_batch = rawmqtt.throughput(
            mosquitto.port, batches, batch_size, settings.inflight_batches
        )
    label = f"backlog drain, {backlog:,} records, 1 worker, SQLite vs raw paho"
    yield Row(
        f"{label} {backlog:,} x {record_size:,} B (one record each) QoS 1, "
        f"{settings.window} in flight",
        ours,
        per_record,
        "records/s",
    )
    yield Row(
        f"{label} {batches:,} x {batch_size:,} B (a batch of {settings.batch_size} each) QoS 1, "
        f"{settings.inflight_batches} in flight (as records/s)",
        ours,
        per_batch * settings.batch_size,
        "records/s",
    )


# (c) Window upserts from the cloud applied on the hub.


def _commands(cloud_dir: Path, hub: Hub, seqs: range) -> list[Outgoing]:
    """One signed ``window.upsert`` per message, as ``CloudService.create_window`` sends them."""
    signer = load_cloud_identity(cloud_dir, CLOUD_KID).signer()
    keys, _ = init_identity(hub.config.hub.state_dir)
    sealing = load_x25519_public(keys.sealing_public)
    now, topic = datetime.now(UTC), commands_topic(PREFIX, HUB_ID)
    rng = random.Random(SEED)
    messages = []
    for n, seq in enumerate(seqs):
        window_id = new_ulid()
        body = WindowUpsertBody(
            window_id=window_id,
            tenant_id=TENANT,
            task_id=f"task-{n:06d}",
            lock_id="front-door",
            starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=4),
            version=1,
            enforcement="hub",
            code_sealed=seal_code(f"{rng.randrange(10**8):08d}", window_id, sealing),
        )
        payload = command_payload(
            type="window.upsert",
            hub_id=HUB_ID,
            seq=seq,
            issued_at=now,
            expires_at=now + timedelta(hours=1),
            body=dump(body),
        )
        messages.append(Outgoing(topic, encode_batch([signer.sign(payload)])))
    return messages


async def _windows(workdir: Path, mosquitto: MosquittoBroker, count: int) -> tuple[float, int]:
    """Commands/s until the hub's cache holds ``count`` windows; and one message's bytes."""
    cloud, hub, tasks = await start(workdir, mosquitto, "windows", SyncSettings())
    try:
        seqs = await cloud.store.allocate_command_seqs(CLOUD_KID, count)
        messages = _commands(cloud.config.cloud.state_dir, hub, seqs)

        async def applied() -> bool:
            return len(hub.engine.cache) >= count

        began = time.perf_counter()
        cloud.worker.publish_later(messages)
        end = await until(applied, "the hub to apply every window")
    finally:
        await stop(hub, tasks)
        await cloud.store.close()
    return count / (end - began), len(messages[0].payload)


@scenario("windows")
def windows(context: Context) -> Iterator[Row]:
    """WINDOWS window.upsert commands cloud -> hub, applied, vs raw paho publishes."""
    workdir = context.workdir / "windows"
    count = context.size("WINDOWS", WINDOWS, QUICK_WINDOWS)
    with broker(workdir) as mosquitto:
        ours, size = asyncio.run(_windows(workdir, mosquitto, count))
        raw = rawmqtt.throughput(mosquitto.port, count, size, PAHO_INFLIGHT)
    label = f"{count:,} window.upsert applied on the hub vs raw paho {count:,} x {size:,} B"
    yield Row(f"{label} QoS 1, {PAHO_INFLIGHT} in flight", ours, raw, "commands/s")
