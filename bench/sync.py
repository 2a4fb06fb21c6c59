"""The MQTT link end to end: backlog drain, record latency, window commands to the hub.

Each scenario starts a private mosquitto, a cloud on SQLite and a hub with the link's
production ``SyncSettings`` (latency also with the test suite's FAST ones), and compares
with raw paho-mqtt on the same broker in the same run. ``LOCKHUB_BENCH_BACKLOG`` sets the
backlog size (default BACKLOG; the issue's full size is 100,000) and
``LOCKHUB_BENCH_WINDOWS`` the number of window commands (default WINDOWS; full size 10,000).
"""

from __future__ import annotations

import asyncio
import math
import os
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
from cloud_sync.store import CloudStore, IngestResult
from gateway.daemon import Hub, stop_hub
from gateway.identity import init_identity
from gateway.sync.settings import SyncSettings
from gateway.testing import lock_event_record
from tests.infra.services import MosquittoBroker
from tests.sync.conftest import FAST

from . import rawmqtt
from .deployment import (
    CLOUD_KID,
    HUB_ID,
    PREFIX,
    broker,
    chains_complete,
    cloud_config,
    make_hub,
    until,
    workers,
)
from .harness import Context, Row, scenario
from .unlock import percentiles

BACKLOG = int(os.environ.get("LOCKHUB_BENCH_BACKLOG", "20000"))
# Backlog appends per transaction: only the preparation, not measured.
APPEND_BATCH = 1_000
# Padding that brings a lock event to a typical record size (as in the append scenario).
PAD = "x" * 120
# Latency samples: the production poll (0.2 s) makes each take about that long.
LATENCY_SAMPLES = {"production": 60, "FAST": 100}
LATENCY_WARMUP = 10
# The raw round trips: as many as the two runs' samples, of about a batch of one record.
RAW_SAMPLES = 100
RAW_BYTES = 1_024
# 10,000 (the size) takes about 50 s here; LOCKHUB_BENCH_WINDOWS=10000 for it.
WINDOWS = int(os.environ.get("LOCKHUB_BENCH_WINDOWS", "2000"))
# The raw baseline's in-flight QoS 1 window where nothing in ours sets one (paho's default).
PAHO_INFLIGHT = 20
SEED = 20_260_101
Tasks = list[asyncio.Task[Any]]


async def _stop(hub: Hub, tasks: Tasks) -> None:
    for task in reversed(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await stop_hub(hub)


def _sqlite(workdir: Path) -> str:
    return f"sqlite+aiosqlite:///{workdir}/cloud.db"


# (a) Backlog drain.


async def _drain(workdir: Path, mosquitto: MosquittoBroker) -> tuple[float, int]:
    """Records/s to drain BACKLOG queued records; and the bytes of one full batch."""
    url, settings = _sqlite(workdir), SyncSettings()
    config = await cloud_config(workdir, mosquitto, url, "drain-1")
    hub = await make_hub(workdir, mosquitto, config, settings)
    tasks: Tasks = []
    try:
        for first in range(0, BACKLOG, APPEND_BATCH):
            last = min(BACKLOG, first + APPEND_BATCH)
            await hub.store.append_records([lock_event_record(n, PAD) for n in range(first, last)])
        sample = await hub.store.unacked(settings.batch_size)
        batch_bytes = len(encode_batch([r.envelope for r in sample]))
        assert hub.link is not None
        async with await CloudStore.open(url) as reader:

            async def drained() -> bool:
                head = (await hub.store.chain_head()).seq
                done = await chains_complete(reader, {HUB_ID: head})
                return done and await hub.store.outbox_depth() == 0

            with workers([config]):
                start = time.perf_counter()
                tasks += [asyncio.create_task(hub.engine.run())]
                tasks += [asyncio.create_task(hub.link.run())]
                end = await until(drained, "the backlog to drain")
    finally:
        await _stop(hub, tasks)
    return BACKLOG / (end - start), batch_bytes


@scenario("drain")
def drain(context: Context) -> Iterator[Row]:
    """A hub's queued backlog to the cloud (one worker, SQLite) vs raw paho batch publishes."""
    workdir = context.workdir / "drain"
    batch = SyncSettings().batch_size
    with broker(workdir) as mosquitto:
        ours, size = asyncio.run(_drain(workdir, mosquitto))
        count = math.ceil(BACKLOG / batch)
        raw = rawmqtt.throughput(mosquitto.port, count, size, SyncSettings().inflight_batches)
    label = f"backlog drain, {BACKLOG:,} records, 1 worker, SQLite vs raw paho {count:,}"
    yield Row(f"{label} x {size:,} B QoS 1 (as records/s)", ours, raw * batch, "records/s")


# (b) Latency: committed on the hub -> stored in the cloud -> acked on the hub.


def _hook(cloud: Cloud, hub: Hub) -> tuple[dict[int, float], list[float], asyncio.Event]:
    """Time each seq's ingest commit in the cloud and each ack applied on the hub."""
    stored: dict[int, float] = {}
    acked: list[float] = []
    event = asyncio.Event()
    ingest, on_acks = cloud.store.ingest, hub.link.on_acks  # type: ignore[union-attr]

    async def timed_ingest(hub_id: str, envelopes: Any) -> IngestResult:
        result = await ingest(hub_id, envelopes)
        now = time.perf_counter()
        for low, high in result.acked:
            for seq in range(low, high + 1):
                stored.setdefault(seq, now)
        return result

    async def timed_acks(data: bytes) -> int:
        newly = await on_acks(data)
        if newly:
            acked.append(time.perf_counter())
            event.set()
        return newly

    # The bench's timing hooks: each wraps the real method and only notes the time.
    cloud.store.ingest = timed_ingest  # type: ignore[method-assign]
    hub.link.on_acks = timed_acks  # type: ignore[method-assign,union-attr]
    return stored, acked, event


async def _start(
    workdir: Path, mosquitto: MosquittoBroker, tag: str, settings: SyncSettings
) -> tuple[Cloud, Hub, Tasks]:
    """An in-process cloud worker and a hub with its link, both connected, outbox empty."""
    config = await cloud_config(workdir, mosquitto, _sqlite(workdir), tag)
    hub = await make_hub(workdir, mosquitto, config, settings)
    cloud = await build_cloud(config)
    assert hub.link is not None
    tasks: Tasks = [asyncio.create_task(cloud.worker.run())]
    tasks += [asyncio.create_task(hub.engine.run()), asyncio.create_task(hub.link.run())]

    async def settled() -> bool:
        return cloud.worker.connected and await hub.store.outbox_depth() == 0

    await until(settled, "the link to connect and its first records to be acked")
    return cloud, hub, tasks


async def _latency(
    workdir: Path, mosquitto: MosquittoBroker, tag: str, settings: SyncSettings
) -> tuple[list[float], list[float]]:
    """Seconds from commit on the hub to stored in the cloud, and to acked on the hub."""
    cloud, hub, tasks = await _start(workdir, mosquitto, tag, settings)
    stored, acked, event = _hook(cloud, hub)
    rng = random.Random(SEED)
    to_cloud: list[float] = []
    to_ack: list[float] = []
    try:
        for n in range(LATENCY_WARMUP + LATENCY_SAMPLES[tag]):
            # A random phase against the pump's poll, as for a record made at any moment.
            await asyncio.sleep(rng.uniform(0, settings.poll))
            event.clear()
            (record,) = await hub.store.append_records([lock_event_record(n, PAD)])
            committed = time.perf_counter()
            while await hub.store.outbox_depth():
                await asyncio.wait_for(event.wait(), 60)
                event.clear()
            if n >= LATENCY_WARMUP:
                to_cloud.append(stored[record.seq] - committed)
                to_ack.append(acked[-1] - committed)
    finally:
        await _stop(hub, tasks)
        await cloud.store.close()
    return to_cloud, to_ack


@scenario("latency")
def latency(context: Context) -> Iterator[Row]:
    """A record's trip hub -> cloud -> ack, p50/p99, vs raw paho one-way and round trips."""
    workdir = context.workdir / "latency"
    runs = {}
    for tag, settings in (("production", SyncSettings()), ("FAST", FAST)):
        # A broker each: the first run's worker session would keep its share of the
        # shared subscription, offline (see docs/performance.md).
        with broker(workdir / tag) as mosquitto:
            runs[tag] = asyncio.run(_latency(workdir / tag, mosquitto, tag, settings))
    with broker(workdir / "raw") as mosquitto:
        one_way, round_trip = rawmqtt.round_trips(mosquitto.port, RAW_SAMPLES, RAW_BYTES)
    raw = {"stored": percentiles(one_way), "acked": percentiles(round_trip)}
    baseline = {"stored": "one-way", "acked": "round trip"}
    for tag, (to_cloud, to_ack) in runs.items():
        settings = SyncSettings() if tag == "production" else FAST
        for what, samples in (("stored", to_cloud), ("acked", to_ack)):
            p50, p99 = percentiles(samples)
            base50, base99 = raw[what]
            label = (
                f"record committed -> {what}, {tag} settings (poll {settings.poll} s), "
                f"n={len(samples)} vs raw paho {baseline[what]} (n={len(one_way)})"
            )
            yield Row(f"{label}, p50", p50, base50, "ms", 2)
            yield Row(f"{label}, p99", p99, base99, "ms", 2)


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
            tenant_id="acme",
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


async def _windows(workdir: Path, mosquitto: MosquittoBroker) -> tuple[float, int]:
    """Commands/s until the hub's cache holds WINDOWS windows; and one message's bytes."""
    cloud, hub, tasks = await _start(workdir, mosquitto, "windows", SyncSettings())
    try:
        seqs = await cloud.store.allocate_command_seqs(CLOUD_KID, WINDOWS)
        messages = _commands(cloud.config.cloud.state_dir, hub, seqs)

        async def applied() -> bool:
            return len(hub.engine.cache) >= WINDOWS

        start = time.perf_counter()
        cloud.worker.publish_later(messages)
        end = await until(applied, "the hub to apply every window")
    finally:
        await _stop(hub, tasks)
        await cloud.store.close()
    return WINDOWS / (end - start), len(messages[0].payload)


@scenario("windows")
def windows(context: Context) -> Iterator[Row]:
    """WINDOWS window.upsert commands cloud -> hub, applied, vs raw paho publishes."""
    workdir = context.workdir / "windows"
    with broker(workdir) as mosquitto:
        ours, size = asyncio.run(_windows(workdir, mosquitto))
        raw = rawmqtt.throughput(mosquitto.port, WINDOWS, size, PAHO_INFLIGHT)
    label = f"{WINDOWS:,} window.upsert applied on the hub vs raw paho {WINDOWS:,} x {size:,} B"
    yield Row(f"{label} QoS 1, {PAHO_INFLIGHT} in flight", ours, raw, "commands/s")
