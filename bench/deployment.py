"""A deployment for the sync benchmarks: a private mosquitto, the cloud, a hub.

The broker is ``tests.infra.services.MosquittoBroker`` (persistence on, anonymous, plain TCP
on loopback) plus the options of the production config/mosquitto/mosquitto.conf that bear on
speed (SPEED_OPTIONS: ``set_tcp_nodelay true``, ``max_packet_size``); not its TLS listener,
client certificates or ACL. Cloud workers run either in the bench process (when a scenario
hooks into them) or as child processes (``workers``), so that a throughput figure is not one
Python process sharing one core with the hub it is measuring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import structlog

from cloud_sync.config import CloudConfig, load_cloud_config
from cloud_sync.daemon import build_cloud
from cloud_sync.identity import init_cloud_identity, load_cloud_identity
from cloud_sync.store import CloudStore, migrate
from gateway.config import load_gateway_config
from gateway.daemon import Hub, build_hub, start_hub
from gateway.identity import init_identity
from gateway.sync.settings import SyncSettings
from tests.infra.services import MosquittoBroker

CLOUD_KID = "cloud-bench"
HUB_ID = "hub-bench"
TENANT = "acme"
PREFIX = "lockhub"
REPO = Path(__file__).resolve().parent.parent
PRODUCTION_CONF = REPO / "config" / "mosquitto" / "mosquitto.conf"
# Options of the production broker config that change how fast messages move, taken as they
# are; whichever of them the file sets is used (persistence is on in MosquittoBroker already).
SPEED_OPTIONS = (
    "set_tcp_nodelay",
    "max_packet_size",
    "max_inflight_messages",
    "max_inflight_bytes",
    "max_queued_messages",
    "max_queued_bytes",
    "message_size_limit",
    "autosave_interval",
    "autosave_on_changes",
)
WORKER_CHILD = "from bench.deployment import worker_child; worker_child()"
# A worker connects and subscribes to a local broker in well under a second.
WORKER_READY_SECONDS = 30.0
# Polling for "done" this often costs the measured side nothing worth counting and puts
# at most this much on a multi-second figure.
POLL_SECONDS = 0.02
# The longest step, 10,000 window commands at about 25 a second (docs/performance.md), takes
# about 7 minutes; a bound turns a lost message into an error instead of a hang.
WAIT_SECONDS = 900.0

CLOUD_TOML = """
[cloud]
state_dir = "cloud"
database_url = "{database_url}"
signing_kid = "{kid}"

[mqtt]
url = "{url}"
topic_prefix = "{prefix}"
shared_group = "lockhub-cloud"
client_id = "{client_id}"
keepalive = 30
"""

HUB_TOML = """
[hub]
id = "{hub_id}"
state_dir = "hub-{hub_id}"

[mqtt]
url = "{url}"
topic_prefix = "{prefix}"
keepalive = 30

[cloud]
command_keys = {{ "{kid}" = "{key}" }}

[[locks]]
id = "front-door"
driver = "sim"
"""


def quiet() -> None:
    """Log warnings only: the cloud and the hub log every batch at info."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def production_options() -> str:
    """The SPEED_OPTIONS lines of the production mosquitto.conf."""
    lines = [line.strip() for line in PRODUCTION_CONF.read_text().splitlines()]
    return "\n".join(line for line in lines if line.split(" ", 1)[0] in SPEED_OPTIONS)


@contextlib.contextmanager
def broker(workdir: Path) -> Iterator[MosquittoBroker]:
    """A private mosquitto for one scenario, with the production config's speed options."""
    mosquitto = MosquittoBroker(workdir / "broker", extra_config=production_options())
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


async def cloud_config(
    workdir: Path, mosquitto: MosquittoBroker, database_url: str, client_id: str
) -> CloudConfig:
    """Write a worker's config (one state dir for all workers), make the key, migrate."""
    workdir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - set-up, nothing measured yet
    path = workdir / f"cloud-{client_id}.toml"
    path.write_text(
        CLOUD_TOML.format(
            database_url=database_url,
            kid=CLOUD_KID,
            url=mosquitto.url,
            prefix=PREFIX,
            client_id=client_id,
        )
    )
    config = load_cloud_config(path, env={})
    init_cloud_identity(config.cloud.state_dir, CLOUD_KID)
    await migrate(database_url)
    return config


async def register(database_url: str, hub_id: str, signing: str, sealing: str) -> None:
    """Register a hub with the cloud by its public keys, serving tenant TENANT."""
    async with await CloudStore.open(database_url) as store:
        await store.add_hub(hub_id, signing, sealing)
        await store.grant_hub(hub_id, TENANT)


async def make_hub(
    workdir: Path, mosquitto: MosquittoBroker, cloud: CloudConfig, settings: SyncSettings
) -> Hub:
    """A registered, started hub whose link is built but not running."""
    key = load_cloud_identity(cloud.cloud.state_dir, CLOUD_KID).signing_public
    path = workdir / "gateway.toml"
    path.write_text(
        HUB_TOML.format(hub_id=HUB_ID, url=mosquitto.url, prefix=PREFIX, kid=CLOUD_KID, key=key)
    )
    config = load_gateway_config(path, env={})
    keys, _ = init_identity(config.hub.state_dir)
    await register(cloud.cloud.database_url, HUB_ID, keys.signing_public, keys.sealing_public)
    hub = await build_hub(config, sync_check=lambda: True, sync_settings=settings)
    await start_hub(hub)
    return hub


@contextlib.contextmanager
def workers(configs: Sequence[CloudConfig]) -> Iterator[list[subprocess.Popen[str]]]:
    """One cloud worker process per config, each connected and subscribed before this yields."""
    children = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-c", WORKER_CHILD, str(c.cloud.state_dir.parent / name(c))],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for c in configs
    ]
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("a cloud worker did not start")
        yield children
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait(WORKER_READY_SECONDS)
            if child.stdout is not None:
                child.stdout.close()


def name(config: CloudConfig) -> str:
    """The file name ``cloud_config`` gave this worker's config."""
    return f"cloud-{config.mqtt.client_id}.toml"


def worker_child() -> None:
    """Child entry point: run one cloud worker of config ``argv[1]`` until SIGTERM."""
    quiet()
    config = load_cloud_config(Path(sys.argv[1]), env={})
    asyncio.run(_serve_worker(config))


async def _serve_worker(config: CloudConfig) -> None:
    cloud = await build_cloud(config)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(cloud.worker.run())
    try:
        while not cloud.worker.connected:  # noqa: ASYNC110 - the worker exposes only a flag
            await asyncio.sleep(POLL_SECONDS)
        print("ready", flush=True)
        await stop.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await cloud.store.close()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> float:
    """Poll ``check`` until it holds; return when it first held (perf_counter seconds)."""
    deadline = time.perf_counter() + WAIT_SECONDS
    while not await check():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)
    return time.perf_counter()


async def chains_complete(store: CloudStore, heads: dict[str, int]) -> bool:
    """Whether the cloud chained every hub's records up to the given head seqs."""
    for hub_id, head in heads.items():
        if (await store.chain_state(hub_id)).next_seq <= head:
            return False
    return True
