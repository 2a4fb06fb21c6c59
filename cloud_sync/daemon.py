"""The cloud service's composition root: store, domain service, MQTT worker, REST API.

``lockhub cloud run`` runs this in the foreground until SIGTERM, under systemd as
``Type=notify`` (systemd/lockhub-cloud.service); several can run against one broker and one
database (shared subscriptions split the records between them). SIGTERM drains the API and
closes the store; SIGHUP re-reads the config file and applies its log level. If the MQTT
worker or the webhook deliveries stop on their own, the service stops with an error (exit 1)
and systemd restarts it, rather than serving an API over a cloud that ingests nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web

from gateway.logs import configure_logging
from gateway.notify import Notifier, watchdog_interval

from .config import CloudConfig, ConfigError, load_cloud_config
from .errors import CloudError
from .identity import load_cloud_identity
from .ingest import CloudWorker
from .service import CloudService
from .store import CloudStore

log = structlog.get_logger(__name__)

# API requests in flight get this long to finish at shutdown (TimeoutStopSec=30 in the unit).
DRAIN_SECONDS = 10.0
# The level while the cloud config has no [log] table (docs/operations.md, SIGHUP).
DEFAULT_LOG_LEVEL = "info"


class ServiceFailedError(CloudError):
    """A part of the running service stopped on its own: exit non-zero so systemd restarts."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"the {part} stopped: {reason}; stopping the service")
        self.part = part


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
        group=config.mqtt.shared_group or None,
    )
    return Cloud(config, store, service, worker)


async def serve_cloud(
    cloud: Cloud, stop: asyncio.Event, *, notifier: Notifier | None = None
) -> None:
    """Run the MQTT worker, the webhook deliveries and the REST API until ``stop`` is set."""
    from .api import build_cloud_app  # noqa: PLC0415 - the API pulls in its OpenAPI document
    from .api.metrics import add_metrics_route  # noqa: PLC0415
    from .api.ratelimit import KeyRateLimiter  # noqa: PLC0415
    from .desk import open_desk  # noqa: PLC0415
    from .metrics import CloudMetrics  # noqa: PLC0415
    from .webhooks.delivery import DeliveryWorker  # noqa: PLC0415

    api = cloud.config.api
    limiter = KeyRateLimiter(api.rate_limit_per_second, api.rate_limit_burst)
    metrics = CloudMetrics(cloud.store.chain_summary, connected=lambda: cloud.worker.connected)
    cloud.worker.metrics = metrics
    desk = await open_desk(cloud.config, cloud.store)
    deliveries = DeliveryWorker(cloud.store.database)
    if desk is not None:
        desk.carriers.registry.board.register_metrics(metrics.registry)
    app = build_cloud_app(
        cloud.service,
        metrics.counting(cloud.worker.publish_later),
        ready=cloud.ready,
        limiter=limiter,
        carriers=None if desk is None else desk.carriers,
        database=cloud.store.database,
        wake=deliveries.wake,
    )
    add_metrics_route(app, metrics)
    notifier = notifier or Notifier(None)
    # cleanup() stops listening and lets requests in flight finish before cancelling them.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=DRAIN_SECONDS)
    await runner.setup()
    host, port = cloud.config.api.host, cloud.config.api.port
    drained = False
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("cloud.api_listening", host=host, port=port, carriers=desk is not None)
        worker = asyncio.create_task(cloud.worker.run(), name="MQTT worker")
        delivering = asyncio.create_task(deliveries.run(), name="webhook deliveries")
        parts = (worker, delivering)
        pinger = start_pinging(notifier, parts)
        notifier.ready(f"serving the API on {host}:{port}")
        try:
            await until_stopped(stop, parts)
            notifier.stopping("stopping: finishing requests in flight")
            drained = True
            await runner.cleanup()
        finally:
            for task in (worker, delivering, pinger):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
    finally:
        if not drained:
            await runner.cleanup()
        await deliveries.close()
        if desk is not None:
            await desk.close()


async def until_stopped(stop: asyncio.Event, parts: Sequence[asyncio.Task[None]]) -> None:
    """Wait for ``stop``; raise ServiceFailedError if one of ``parts`` ends first."""
    stopping = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({stopping, *parts}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    for part in parts:
        if part in done:
            if part.cancelled():
                reason = "cancelled"
            else:
                error = part.exception()
                reason = "returned" if error is None else f"{type(error).__name__}: {error}"
            log.critical("cloud.part_stopped", part=part.get_name(), reason=reason)
            raise ServiceFailedError(part.get_name(), reason)


def start_pinging(
    notifier: Notifier, parts: Sequence[asyncio.Task[None]]
) -> asyncio.Task[None] | None:
    """Ping systemd's watchdog while every part runs (no task without a watchdog)."""
    interval = watchdog_interval()
    if not interval:
        return None
    return asyncio.create_task(
        keep_pinging(notifier, interval, lambda: not any(part.done() for part in parts))
    )


async def keep_pinging(
    notifier: Notifier, interval: float, alive: Callable[[], bool] = lambda: True
) -> None:
    """Ping systemd's watchdog while the event loop turns and ``alive()`` holds.

    The database and the broker are the cloud's dependencies, not its liveness: /readyz
    reports them, and restarting the service would not bring them back. A stopped MQTT
    worker is: without it the service ingests nothing.
    """
    while True:
        if alive():
            notifier.watchdog()
        else:
            log.error("watchdog.withheld", reason="a part of the service stopped")
        await asyncio.sleep(interval)


def log_level_of(config: CloudConfig) -> str:
    """The configured log level (``[log] level``)."""
    return config.log.level


def reload_config(path: Path | None) -> None:
    """SIGHUP: re-read ``path`` and apply its log level; a bad file changes nothing."""
    if path is None:
        # Never the default action for SIGHUP (exit): `systemctl reload` must not stop us.
        log.warning("config.reload_unavailable", reason="started without a config path")
        return
    try:
        config = load_cloud_config(path)
    except ConfigError as exc:
        log.error("config.reload_refused", source=exc.source, errors=list(exc.lines))
        return
    level = log_level_of(config)
    configure_logging(level, config.log.format)
    log.info("config.reloaded", source=str(path), log_level=level)


async def run_cloud(
    config: CloudConfig,
    stop: asyncio.Event | None = None,
    *,
    config_path: Path | None = None,
    notifier: Notifier | None = None,
) -> None:
    """Run the cloud service until SIGTERM/SIGINT (or ``stop``); SIGHUP reloads ``config_path``."""
    stop = stop or asyncio.Event()
    notifier = notifier or Notifier.from_env()
    loop = asyncio.get_running_loop()
    handlers = [
        (signal.SIGTERM, stop.set),
        (signal.SIGINT, stop.set),
        (signal.SIGHUP, lambda: reload_config(config_path)),
    ]
    for sig, handler in handlers:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)
    cloud = await build_cloud(config)
    try:
        log.info("cloud.started", client_id=config.mqtt.client_id)
        await serve_cloud(cloud, stop, notifier=notifier)
    finally:
        notifier.stopping("stopping: closing the store")
        await cloud.store.close()
        log.info("cloud.stopped")
