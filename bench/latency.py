"""A delivery's trip: a courier's unlock at the hub's local API -> its PoD stored in the cloud
-> the cloud's ack applied on the hub, p50/p99, beside raw paho one-way and round trips.

A hub (sim lock, radio latency 0) and an in-process cloud worker (SQLite) are connected on a
private mosquitto; the cloud creates a window and the hub applies it. Each sample: sleep a
random fraction of the pump's poll (a courier arrives at any moment), POST the code to the
hub's local API (t0: the request leaves), the hub decides, unlocks the sim lock, commits the
PoD from the lock's event and answers 200; t1 = when the cloud's ``CloudStore.ingest`` returns
for the batch holding that PoD (committed in the cloud), t2 = when ``HubLink.on_acks`` returns
having acked its seq (committed on the hub). Both times come from timing wrappers around the
real methods.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from cloud_sync.daemon import Cloud
from cloud_sync.protocol.b64 import b64url_decode
from cloud_sync.store import IngestResult
from gateway.api import build_app
from gateway.daemon import Hub
from gateway.sync.settings import SyncSettings
from tests.infra.services import MosquittoBroker
from tests.sync.conftest import FAST

from . import rawmqtt
from .deployment import HUB_ID, TENANT, broker, until
from .harness import Context, Row, scenario
from .sync import SEED, start, stop
from .unlock import api_parts, percentiles, serve

# Samples per run: the production poll (0.2 s) makes each take about that long.
SAMPLES = {"production": 60, "FAST": 100}
QUICK_SAMPLES = 3
WARMUP = 10
QUICK_WARMUP = 1
# The raw round trips: as many as the larger run's samples, of about a batch of one record.
RAW_SAMPLES = 100
QUICK_RAW_SAMPLES = 5
RAW_BYTES = 1_024
# No step on loopback takes this long; a lost message fails the bench instead of hanging it.
STEP_SECONDS = 60.0
UNLOCK = "/v1/locks/front-door/unlock"


@dataclass
class Stopwatch:
    """What the hooks saw: each PoD's seq and when the cloud stored it, and each applied ack
    with the oldest seq still unacked after it."""

    stored: dict[str, tuple[int, float]] = field(default_factory=dict)
    acks: list[tuple[float, float]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def acked_at(self, seq: int, after: float) -> float | None:
        """When the first ack applied after ``after`` that covered ``seq`` was, if one was."""
        return next((at for at, oldest in self.acks if at >= after and oldest > seq), None)

    async def wait(self, what: str) -> None:
        """Until a hook saw something new."""
        try:
            await asyncio.wait_for(self.changed.wait(), STEP_SECONDS)
        except TimeoutError:
            raise TimeoutError(f"nothing arrived while waiting for {what}") from None
        self.changed.clear()


def _pods(envelopes: Any) -> Iterator[tuple[str, int]]:
    """(pod_id, seq) of each ``pod.recorded`` in a batch of record envelopes."""
    for envelope in envelopes:
        payload = json.loads(b64url_decode(envelope["payload"]))
        if payload["type"] == "pod.recorded":
            yield payload["body"]["pod_id"], payload["seq"]


def hook(cloud: Cloud, hub: Hub) -> Stopwatch:
    """Note when the cloud stores each PoD and when the hub applies each ack."""
    assert hub.link is not None, "the latency bench needs the hub's MQTT link"
    ingest, on_acks = cloud.store.ingest, hub.link.on_acks
    watch = Stopwatch()

    async def timed_ingest(hub_id: str, envelopes: Any) -> IngestResult:
        result = await ingest(hub_id, envelopes)
        now = time.perf_counter()
        for pod_id, seq in _pods(envelopes):
            watch.stored.setdefault(pod_id, (seq, now))
        watch.changed.set()
        return result

    async def timed_acks(data: bytes) -> int:
        newly = await on_acks(data)
        now = time.perf_counter()
        if newly:
            oldest = await hub.store.unacked(1)
            watch.acks.append((now, oldest[0].seq if oldest else math.inf))
            watch.changed.set()
        return newly

    # The bench's timing hooks: each wraps the real method and only notes the time.
    cloud.store.ingest = timed_ingest  # type: ignore[method-assign]
    hub.link.on_acks = timed_acks  # type: ignore[method-assign]
    return watch


async def open_window(cloud: Cloud, hub: Hub) -> str:
    """A window (no use limit) made by the cloud and applied by the hub; its code."""
    now = datetime.now(UTC)
    view, code, outgoing = await cloud.service.create_window(
        TENANT,
        "task-latency",
        hub_id=HUB_ID,
        lock_id="front-door",
        starts_at=now - timedelta(minutes=1),
        ends_at=now + timedelta(hours=4),
    )
    cloud.worker.publish_later(outgoing)

    async def applied() -> bool:
        return hub.engine.cache.get(view.window_id) is not None

    await until(applied, "the hub to apply the latency window")
    return code


async def one_trip(
    session: aiohttp.ClientSession, url: str, code: str, watch: Stopwatch
) -> tuple[float, float]:
    """Seconds from the unlock request to the PoD stored in the cloud, and to its ack."""
    began = time.perf_counter()
    async with session.post(url, json={"code": code}) as response:
        body = await response.json()
    if response.status != 200:
        raise RuntimeError(f"unlock answered {response.status}: {body}")
    pod_id = body["pod_id"]
    while pod_id not in watch.stored:
        await watch.wait("the PoD to be stored in the cloud")
    seq, stored = watch.stored[pod_id]
    while (acked := watch.acked_at(seq, stored)) is None:
        await watch.wait("the ack of the PoD on the hub")
    return stored - began, acked - began


@dataclass(frozen=True, slots=True)
class Run:
    """One latency run: its settings and how many samples to take after the warm-up."""

    tag: str
    settings: SyncSettings
    samples: int
    warmup: int


async def _latency(
    workdir: Path, mosquitto: MosquittoBroker, run: Run
) -> tuple[list[float], list[float]]:
    """Seconds from unlock to stored in the cloud, and to acked on the hub, per sample."""
    settings = run.settings
    cloud, hub, tasks = await start(workdir, mosquitto, run.tag, settings)
    rng = random.Random(SEED)
    to_cloud: list[float] = []
    to_ack: list[float] = []
    runner: web.AppRunner | None = None
    try:
        code = await open_window(cloud, hub)
        watch = hook(cloud, hub)
        runner, base = await serve(build_app(api_parts(hub)))
        async with aiohttp.ClientSession() as session:
            for n in range(run.warmup + run.samples):
                # A random phase against the pump's poll, as for a courier at any moment.
                await asyncio.sleep(rng.uniform(0, settings.poll))
                stored, acked = await one_trip(session, base + UNLOCK, code, watch)
                if n >= run.warmup:
                    to_cloud.append(stored)
                    to_ack.append(acked)
    finally:
        if runner is not None:
            await runner.cleanup()
        await stop(hub, tasks)
        await cloud.store.close()
    return to_cloud, to_ack


@scenario("latency")
def latency(context: Context) -> Iterator[Row]:
    """A delivery's trip unlock -> cloud -> ack, p50/p99, vs raw paho one-way and round trips."""
    workdir = context.workdir / "latency"
    warmup = context.size("LATENCY_WARMUP", WARMUP, QUICK_WARMUP)
    runs = {}
    for tag, settings in (("production", SyncSettings()), ("FAST", FAST)):
        samples = context.size(f"LATENCY_{tag.upper()}", SAMPLES[tag], QUICK_SAMPLES)
        run = Run(tag, settings, samples, warmup)
        # A broker each: the first run's worker session would keep its share of the
        # shared subscription, offline (see docs/performance.md).
        with broker(workdir / tag) as mosquitto:
            runs[tag] = asyncio.run(_latency(workdir / tag, mosquitto, run))
    raw_samples = context.size("LATENCY_RAW", RAW_SAMPLES, QUICK_RAW_SAMPLES)
    with broker(workdir / "raw") as mosquitto:
        one_way, round_trip = rawmqtt.round_trips(mosquitto.port, raw_samples, RAW_BYTES)
    raw = {"stored": percentiles(one_way), "acked": percentiles(round_trip)}
    baseline = {"stored": "one-way", "acked": "round trip"}
    for tag, (to_cloud, to_ack) in runs.items():
        settings = SyncSettings() if tag == "production" else FAST
        for what, samples_of in (("stored", to_cloud), ("acked", to_ack)):
            p50, p99 = percentiles(samples_of)
            base50, base99 = raw[what]
            label = (
                f"unlock via local API -> PoD {what}, {tag} settings (poll {settings.poll} s), "
                f"n={len(samples_of)} vs raw paho {baseline[what]} (n={len(one_way)})"
            )
            yield Row(f"{label}, p50", p50, base50, "ms", 2)
            yield Row(f"{label}, p99", p99, base99, "ms", 2)
