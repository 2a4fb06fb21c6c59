"""The demo's first steps: a broker, keys and a database through the real CLI, then the
cloud service and the hub running in this process as their daemons run them."""

from __future__ import annotations

import asyncio
import base64
import secrets
import stat
from urllib.parse import urlsplit

from cloud_sync.config import load_cloud_config
from cloud_sync.daemon import build_cloud, serve_cloud
from cloud_sync.identity import load_cloud_identity
from cloud_sync.service import API_KEY_SCHEME

from ..config import load_gateway_config
from ..daemon import build_hub, serve, start_hub, stop_hub
from ..identity import HubKeys, load_identity
from .broker import EmbeddedBroker, Relay
from .scene import (
    CARRIER_KEYS_TOML,
    CLOUD_BACKOFF_CAP_SECONDS,
    CLOUD_KID,
    CLOUD_TOML,
    DEMO_SYNC,
    GATEWAY_TOML,
    HUB_ID,
    TENANT,
    Demo,
    DemoFailedError,
    expect,
    free_port,
)

# Keys and state directories as `init` leaves them: the owner's alone.
SECRET_FILE_MODE = 0o600
STATE_DIR_MODE = 0o700
# AES-256-GCM seals carrier credentials: a 32-byte key.
CARRIER_KEY_BYTES = 32


async def step_broker(demo: Demo) -> str:
    """An embedded amqtt broker on a free loopback port, or a relay to ``--mqtt-url``."""
    demo.prefix = f"lockhub/demo-{secrets.token_hex(4)}"  # runs never see each other's topics
    if demo.mqtt_url is None:
        broker = EmbeddedBroker(free_port())
        await broker.start()
        demo.uplink = broker
        demo.cleanup.append(broker.close)
        return f"{broker.what}; topics under {demo.prefix}/"
    parts = urlsplit(demo.mqtt_url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise DemoFailedError("--mqtt-url must be mqtt://host[:port] (the demo dials plain MQTT)")
    host, port = parts.hostname, parts.port or 1883
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise DemoFailedError(f"no broker answers at {demo.mqtt_url}: {exc.strerror}") from exc
    writer.close()
    relay = Relay(demo.mqtt_url, host, port)
    await relay.start()
    demo.uplink = relay
    demo.cleanup.append(relay.close)
    return f"{relay.what} ({relay.hub_url}); topics under {demo.prefix}/"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mode(path_mode: int) -> int:
    return stat.S_IMODE(path_mode)


async def _hub_keys(demo: Demo) -> HubKeys:
    """The hub's config (trusting the cloud's key) and its keys by ``lockhub gateway init``."""
    if demo.uplink is None:
        raise DemoFailedError("an earlier step did not start the broker")
    # What `lockhub cloud identity` prints, read the way it reads it (one CLI start less).
    cloud = load_cloud_identity(demo.workdir / "cloud", CLOUD_KID)
    (demo.workdir / "gateway.toml").write_text(
        GATEWAY_TOML.format(
            hub_id=HUB_ID, url=demo.uplink.hub_url, prefix=demo.prefix,
            protocol=demo.uplink.protocol, kid=cloud.kid, key=cloud.signing_public,
            port=free_port(),
        )
    )  # fmt: skip
    await demo.cli("gateway", "init", "--config", "gateway.toml")
    return load_identity(demo.workdir / "hub")


async def step_setup(demo: Demo) -> str:
    """Keys, schema, hub registration and an API key through the real ``lockhub`` CLI."""
    if demo.uplink is None:
        raise DemoFailedError("an earlier step did not start the broker")
    cloud_toml = demo.workdir / "cloud.toml"
    cloud_toml.write_text(
        CLOUD_TOML.format(
            database=demo.workdir / "cloud" / "cloud.db", kid=CLOUD_KID, url=demo.uplink.cloud_url,
            prefix=demo.prefix, client_id=f"lockhub-cloud-{secrets.token_hex(4)}",
            protocol=demo.uplink.protocol, port=free_port(),
        )
    )  # fmt: skip
    keys = demo.workdir / "cloud" / "carrier-keys.toml"
    await demo.cli("cloud", "init", "--config", "cloud.toml")
    keys.write_text(CARRIER_KEYS_TOML.format(key=_b64(secrets.token_bytes(CARRIER_KEY_BYTES))))
    keys.chmod(SECRET_FILE_MODE)
    # Side by side where nothing depends on the other: each CLI start costs about a second.
    hub, migrated = await asyncio.gather(
        _hub_keys(demo), demo.cli("cloud", "migrate", "--config", "cloud.toml")
    )
    key, _ = await asyncio.gather(
        demo.cli("cloud", "keys", "create", "--config", "cloud.toml", "--tenant", TENANT),
        demo.cli(
            "cloud", "hub", "add", "--config", "cloud.toml", "--id", HUB_ID,
            f"--signing-key={hub.signing_public}", f"--sealing-key={hub.sealing_public}",
            "--tenant", TENANT,
        ),
    )  # fmt: skip
    key, migrated = key.strip(), migrated.strip()
    expect(key.startswith(f"{API_KEY_SCHEME}_"), "`keys create` printed no API key")
    demo.api_key = key
    secrets_on_disk = [demo.workdir / "cloud" / "command-signing.key", keys]
    secrets_on_disk += sorted((demo.workdir / "hub").glob("*.key"))
    for path in secrets_on_disk:
        expect(_mode(path.stat().st_mode) == SECRET_FILE_MODE, f"{path} is not mode 0600")
    for directory in (demo.workdir / "cloud", demo.workdir / "hub"):
        expect(_mode(directory.stat().st_mode) == STATE_DIR_MODE, f"{directory} is not 0700")
    demo.files += [("cloud config", cloud_toml), ("hub config", demo.workdir / "gateway.toml")]
    return (
        f"{len(secrets_on_disk)} key files 0600; {migrated.removeprefix('the database is ')}; "
        f"hub {HUB_ID} registered for {TENANT}; an API key printed once"
    )


async def step_cloud(demo: Demo) -> str:
    """The cloud daemon's parts in this process: its MQTT worker and REST API on SQLite."""
    config = load_cloud_config(demo.workdir / "cloud.toml")
    cloud = demo.cloud = await build_cloud(config)
    shared = demo.mqtt_url is not None
    if not shared:
        # amqtt has no shared subscriptions ($share/... would match nothing): one worker, plain.
        cloud.worker.group = None
    cloud.worker.backoff_cap = CLOUD_BACKOFF_CAP_SECONDS
    stop = asyncio.Event()
    task = asyncio.create_task(serve_cloud(cloud, stop), name="demo cloud")

    async def stop_cloud() -> None:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await cloud.store.close()

    demo.cleanup.append(stop_cloud)
    demo.cloud_url = f"http://{config.api.host}:{config.api.port}"
    http = demo.client()

    async def ready() -> bool:
        if task.done():
            raise DemoFailedError(f"the cloud service stopped: {task.exception()!r}")
        try:
            async with http.get(f"{demo.cloud_url}/readyz") as response:
                return response.status == 200
        except OSError:
            return False

    await demo.wait_for("the cloud to be ready", ready)
    demo.files.append(("cloud database", demo.workdir / "cloud" / "cloud.db"))
    group = f"shared group {cloud.worker.group}" if shared else "plain subscriptions"
    return f"REST API {demo.cloud_url} ready; MQTT worker connected ({group})"


async def step_hub(demo: Demo) -> str:
    """The hub daemon's parts: store, access engine, three simulated locks, API, MQTT link."""
    path = demo.workdir / "gateway.toml"
    config = load_gateway_config(path)
    hub = demo.hub = await build_hub(config, source=str(path), sync_settings=DEMO_SYNC)
    await start_hub(hub)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(hub, stop), name="demo hub")

    async def stop_gateway() -> None:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        await stop_hub(hub)

    demo.cleanup.append(stop_gateway)
    demo.hub_url = f"http://{config.api.host}:{config.api.port}"
    http, link = demo.client(), hub.link
    if link is None:
        raise DemoFailedError("the hub was built without its MQTT link")

    async def ready() -> bool:
        if task.done():
            raise DemoFailedError(f"the hub stopped: {task.exception()!r}")
        try:
            async with http.get(f"{demo.hub_url}/readyz") as response:
                return response.status == 200 and link.connected
        except OSError:
            return False

    await demo.wait_for("the hub to be ready and connected", ready)

    async def drained() -> bool:
        return await hub.store.outbox_depth() == 0

    await demo.wait_for("the cloud to ack the hub's first records", drained)
    demo.files.append(("hub database", hub.store.path))
    version = f"MQTT {link.version} ([mqtt] protocol {hub.config.mqtt.protocol})"
    return (
        f"{demo.hub_url} ready; locks {', '.join(hub.coordinators)}; {version}; "
        f"first records acked (chain head {(await hub.store.chain_head()).seq})"
    )
