"""Real cloud workers and a real hub on one mosquitto: bounded worker sessions, resync on hello."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.config import CloudMqttSection
from cloud_sync.ingest import CloudWorker
from cloud_sync.protocol.envelope import Signer
from cloud_sync.service import CloudService
from cloud_sync.store import CloudStore, IngestResult, migrate
from gateway.identity import HubKeys
from gateway.sync.client import Version
from tests.infra.services import MosquittoBroker

from .cloud import eventually, eventually_depth
from .conftest import CLOUD_KID, FAST, HUB_ID, PREFIX, HubFactory, SyncHub
from .proxy import old_broker

pytestmark = pytest.mark.mqtt

GROUP = "lockhub-cloud"
TENANT = "acme"
# Resends far beyond the test's waits: a record handed to a stopped worker is not rescued by
# the hub while the test looks, so it shows up as a record that never arrives.
NO_RESCUE = replace(FAST, resend_after=600.0, hole_resend_after=600.0)
# mosquitto 2.0 logs this when a session expires (checked on 2.0.11).
EXPIRED = "Expiring client {} due to timeout."


@dataclass
class CloudSide:
    """The cloud's store and service, and the workers a test starts on them."""

    store: CloudStore
    service: CloudService
    url: str
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def worker(self, client_id: str, *, expiry: int = 300, url: str = "") -> CloudWorker:
        mqtt = CloudMqttSection.model_validate(
            {
                "url": url or self.url,
                "topic_prefix": PREFIX,
                "keepalive": 5,
                "client_id": client_id,
                "worker_session_expiry": expiry,
            }
        )
        return CloudWorker(
            self.store, self.service, mqtt, client_id=client_id, group=GROUP, backoff_cap=0.2
        )

    async def start(self, worker: CloudWorker) -> CloudWorker:
        self.tasks[worker.client_id] = asyncio.create_task(worker.run())
        await eventually(lambda: worker.connected, f"{worker.client_id} to connect")
        return worker

    async def stop(self, worker: CloudWorker) -> None:
        """Stop a worker as SIGTERM does: a clean disconnect, its session left to expire."""
        task = self.tasks.pop(worker.client_id)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def cloud(
    tmp_path: Path, mosquitto: MosquittoBroker, cloud_key: Ed25519PrivateKey, hub_keys: HubKeys
) -> AsyncIterator[CloudSide]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cloud.db'}"
    await migrate(url)
    async with await CloudStore.open(url) as store:
        service = CloudService(store, Signer(CLOUD_KID, cloud_key), PREFIX)
        await service.add_hub(
            HUB_ID, hub_keys.signing_public, hub_keys.sealing_public, tenants=[TENANT]
        )
        side = CloudSide(store, service, mosquitto.url)
        try:
            yield side
        finally:
            for task in side.tasks.values():
                task.cancel()
            await asyncio.gather(*side.tasks.values(), return_exceptions=True)


async def one_by_one(hub: SyncHub, count: int) -> None:
    """Add records one at a time, each acked before the next: one message each."""
    for _ in range(count):
        await hub.add_records(1)
        await eventually_depth(hub, 0)


async def sent(hub: SyncHub, count: int) -> None:
    """Add records one at a time, each published (not necessarily acked) before the next."""
    pump = hub.link.pump
    for number in range(count):
        target = pump.published_records + 1
        await hub.add_records(1, start=number)
        await eventually(lambda: pump.published_records >= target, "the record to go")  # noqa: B023


async def test_a_worker_gone_for_good_stops_getting_records_once_its_session_expires(
    mosquitto: MosquittoBroker, make_hub: HubFactory, cloud: CloudSide
) -> None:
    first = await cloud.start(cloud.worker("worker-1", expiry=2))
    second = await cloud.start(cloud.worker("worker-2", expiry=2))
    assert (first.version, second.version) == (Version.V5, Version.V5)
    async with make_hub(mosquitto.url, settings=NO_RESCUE) as hub:
        await one_by_one(hub, 6)
        assert first.ingested > 0
        assert second.ingested > 0  # the group split the records
        await cloud.stop(second)
        expired = EXPIRED.format("worker-2")
        await eventually(
            lambda: expired in mosquitto.log_path.read_text(), "the session to expire", 15
        )
        before, resends = first.ingested, hub.link.pump.resends
        # Each record is acked promptly (well inside WAIT_SECONDS): none goes to worker-2.
        await one_by_one(hub, 10)
        assert first.ingested == before + 10
        assert hub.link.pump.resends == resends


async def test_a_worker_back_within_its_session_expiry_gets_its_share(
    mosquitto: MosquittoBroker, make_hub: HubFactory, cloud: CloudSide
) -> None:
    first = await cloud.start(cloud.worker("worker-1"))
    second = await cloud.start(cloud.worker("worker-2"))
    async with make_hub(mosquitto.url, settings=NO_RESCUE) as hub:
        await one_by_one(hub, 2)
        await cloud.stop(second)
        await sent(hub, 10)
        again = await cloud.start(cloud.worker("worker-2"))
        await eventually_depth(hub, 0)
        # No record was added and none resent since the restart: what the new worker-2
        # ingested waited for it in its session at the broker.
        assert again.ingested > 0
        assert first.ingested + second.ingested + again.ingested == 12
        assert hub.link.pump.resends == 0
        stored = await cloud.store.records(HUB_ID)
        assert [(r.seq, r.chained) for r in stored] == [(s, True) for s in range(1, 13)]


async def test_a_batch_whose_worker_stops_before_the_commit_comes_back_from_the_broker(
    mosquitto: MosquittoBroker,
    make_hub: HubFactory,
    cloud: CloudSide,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reached = asyncio.Event()

    async def before_the_commit(hub_id: str, envelopes: Sequence[object]) -> IngestResult:
        reached.set()
        await asyncio.Event().wait()  # the worker is stopped here, as by a kill
        raise AssertionError("unreachable")

    real = cloud.store.ingest
    monkeypatch.setattr(cloud.store, "ingest", before_the_commit)
    worker = await cloud.start(cloud.worker("worker-1"))
    async with make_hub(mosquitto.url, settings=NO_RESCUE) as hub:
        await hub.add_records(3)
        await eventually(reached.is_set, "the batch to reach the store")
        await cloud.stop(worker)
        monkeypatch.setattr(cloud.store, "ingest", real)
        again = await cloud.start(cloud.worker("worker-1"))
        await eventually_depth(hub, 0)
        # The hub resent nothing: the broker kept the batch, unacked, in worker-1's session.
        assert hub.link.pump.resends == 0
        assert again.ingested == 3
        stored = await cloud.store.records(HUB_ID)
        assert [(r.seq, r.chained) for r in stored] == [(1, True), (2, True), (3, True)]


async def test_a_worker_falls_back_to_mqtt_3_1_1(
    mosquitto: MosquittoBroker, make_hub: HubFactory, cloud: CloudSide
) -> None:
    async with old_broker(mosquitto.port) as (broker, port):
        worker = await cloud.start(cloud.worker("worker-1", url=f"mqtt://127.0.0.1:{port}"))
        assert (worker.version, broker.refused, broker.relayed) == (Version.V311, 1, 1)
        async with make_hub(mosquitto.url) as hub:
            await one_by_one(hub, 3)
        assert worker.ingested == 3


@contextlib.contextmanager
def hellos_seen() -> Iterator[Callable[[], list[MutableMapping[str, Any]]]]:
    """The ``cloud.hello`` events logged meanwhile (each says how many resync messages)."""
    with structlog.testing.capture_logs() as logs:
        yield lambda: [e for e in logs if e["event"] == "cloud.hello"]


async def reconnect(hub: SyncHub) -> None:
    await hub.stop_link()
    hub.start_link()


async def test_a_hello_after_a_revoke_needs_no_resync_but_a_real_difference_does(
    mosquitto: MosquittoBroker, make_hub: HubFactory, cloud: CloudSide
) -> None:
    worker = await cloud.start(cloud.worker("worker-1"))
    service = cloud.service
    now = datetime.now(UTC)
    times = {"starts_at": now - timedelta(minutes=1), "ends_at": now + timedelta(hours=1)}
    with hellos_seen() as hellos:
        async with make_hub(mosquitto.url) as hub:
            await eventually(lambda: len(hellos()) == 1, "the first hello")
            assert hellos()[0]["resync"] == 0  # both sides hold no window
            made = []
            for task in ("task-1", "task-2"):
                view, _, out = await service.create_window(
                    TENANT, task, hub_id=HUB_ID, lock_id="front-door", **times
                )
                worker.publish_later(out)
                made.append(view.window_id)
            await eventually(lambda: all(hub.hub.engine.cache.get(w) for w in made), "windows")
            _, out = await service.revoke_window(TENANT, made[0])
            worker.publish_later(out)
            await eventually(lambda: held_state(hub, made[0]) == "revoked", "the revoke")

            await reconnect(hub)
            await eventually(lambda: len(hellos()) == 2, "the hello after the revoke")
            assert hellos()[1]["resync"] == 0

            await hub.stop_link()
            # A window whose command never reaches the hub: the hello shows the difference.
            missed, _, _ = await service.create_window(
                TENANT, "task-3", hub_id=HUB_ID, lock_id="front-door", **times
            )
            hub.start_link()
            await eventually(lambda: len(hellos()) == 3, "the hello with a difference")
            assert hellos()[2]["resync"] == 1
            await eventually(lambda: bool(hub.hub.engine.cache.get(missed.window_id)), "sync")
            await eventually(lambda: held_state(hub, made[0]) == "revoked", "still revoked")


def held_state(hub: SyncHub, window_id: str) -> str | None:
    row = hub.hub.engine.cache.get(window_id)
    return None if row is None else row.state


def nodelay_by_peer(port: int) -> list[bool]:
    """TCP_NODELAY of each of this process's TCP sockets connected to 127.0.0.1:``port``."""
    found = []
    for entry in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            fd = int(entry.name)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            with socket.socket(fileno=os.dup(fd)) as sock:
                if sock.family not in (socket.AF_INET, socket.AF_INET6):
                    continue
                if sock.type != socket.SOCK_STREAM or sock.getpeername()[1] != port:
                    continue
                found.append(bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
    return found


async def test_the_hub_link_and_the_worker_send_without_nagle_delay(
    mosquitto: MosquittoBroker, make_hub: HubFactory, cloud: CloudSide
) -> None:
    """Nagle's algorithm would hold each small packet for the peer's delayed ACK (~40 ms)."""
    await cloud.start(cloud.worker("worker-1"))
    assert nodelay_by_peer(mosquitto.port) == [True]
    async with make_hub(mosquitto.url) as hub:
        await eventually(lambda: hub.link.connected, "the hub to connect")
        assert nodelay_by_peer(mosquitto.port) == [True, True]


async def test_a_hello_no_worker_heard_is_said_again_and_brings_the_missed_windows(
    mosquitto: MosquittoBroker, make_hub: HubFactory, cloud: CloudSide
) -> None:
    """As after a broker crash that lost the workers' subscriptions: the hub's hello on
    connect reaches no one, and only the cloud's desired state holds the window."""
    now = datetime.now(UTC)
    missed, _, _ = await cloud.service.create_window(
        TENANT, "task-1", hub_id=HUB_ID, lock_id="front-door",
        starts_at=now - timedelta(minutes=1), ends_at=now + timedelta(hours=1),
    )  # fmt: skip
    async with make_hub(mosquitto.url, link=False) as hub:
        hub.link.hello_interval = 0.3
        hub.start_link()
        await eventually(lambda: hub.link.hellos_published >= 1, "the hello on connect")
        await cloud.start(cloud.worker("worker-1"))  # subscribes after that hello
        await eventually(lambda: bool(hub.hub.engine.cache.get(missed.window_id)), "the sync")
        assert hub.link.hellos_published >= 2
