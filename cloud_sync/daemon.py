"""The cloud service's composition root: store, domain service, MQTT worker, REST API.

``lockhub cloud run`` runs this in the foreground until SIGTERM; several can run against one
broker and one database (shared subscriptions split the records between them).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass

import structlog
from aiohttp import web

from .config import CloudConfig
from .identity import load_cloud_identity
from .ingest import CloudWorker
from .service import CloudService
from .store import CloudStore

log = structlog.get_logger(__name__)


@dataclass
class Cloud:
    """The running cloud service's parts."""

    config: CloudConfig
    store: CloudStore
    service: CloudService
    worker: CloudWorker

    def ready(self) -> dict[str, bool]:
        """Readiness checks for /readyz: the database is open and the broker connected."""
        return {"store": True, "mqtt": self.worker.connected}


async def open_service(config: CloudConfig) -> tuple[CloudStore, CloudService]:
    """Open the store (which must be migrated) and the domain service over it."""
    keys = load_cloud_identity(config.cloud.state_dir, config.cloud.signing_kid)
    store = await CloudStore.open(config.cloud.database_url)
    return store, CloudService(store, keys.signer(), config.mqtt.topic_prefix)


async def build_cloud(config: CloudConfig) -> Cloud:
    """Build every part of the cloud service (nothing runs yet)."""
    store, service = await open_service(config)
    worker = CloudWorker(
        store=store,
        service=service,
        mqtt=config.mqtt,
        client_id=config.mqtt.client_id,
        group=config.mqtt.shared_group,
    )
    return Cloud(config, store, service, worker)


async def serve_cloud(cloud: Cloud, stop: asyncio.Event) -> None:
    """Run the MQTT worker and the REST API until ``stop`` is set."""
    from .api import build_cloud_app  # noqa: PLC0415 - the API pulls in its OpenAPI document
    from .api.ratelimit import KeyRateLimiter  # noqa: PLC0415

    api = cloud.config.api
    limiter = KeyRateLimiter(api.rate_limit_per_second, api.rate_limit_burst)
    app = build_cloud_app(
        cloud.service, cloud.worker.publish_later, ready=cloud.ready, limiter=limiter
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = cloud.config.api.host, cloud.config.api.port
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("cloud.api_listening", host=host, port=port)
        worker = asyncio.create_task(cloud.worker.run(), name="cloud worker")
        try:
            await stop.wait()
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
    finally:
        await runner.cleanup()


async def run_cloud(config: CloudConfig, stop: asyncio.Event | None = None) -> None:
    """Run the cloud service until SIGTERM/SIGINT (or ``stop``)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    cloud = await build_cloud(config)
    try:
        log.info("cloud.started", client_id=config.mqtt.client_id)
        await serve_cloud(cloud, stop)
    finally:
        await cloud.store.close()
        log.info("cloud.stopped")
