"""The composition root: builds the hub's parts from its config and runs them until stopped.

``lockhub gateway run`` runs this in the foreground, under systemd as ``Type=notify``
(systemd/lockhub-gateway.service): READY once serving, WATCHDOG while healthy, STOPPING at
shutdown. SIGTERM drains requests, flushes the outbox and closes the store; SIGHUP reloads
what can change safely (``gateway.reload``).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import signal
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from aiohttp import web

from cloud_sync.protocol.envelope import Signer
from cloud_sync.protocol.keys import load_command_keys

from .access.engine import AccessEngine, AccessSettings
from .access.intake import CommandIntake
from .access.lockout import Lockouts
from .access.records import alert
from .api import ApiParts, build_app
from .clock import (
    FLOOR_KV_KEY,
    TrustedClock,
    format_floor,
    keep_floor,
    parse_floor,
    sync_flag_check,
)
from .config import GatewayConfig
from .errors import GatewayError
from .hubmetrics import hub_metrics
from .identity import load_identity
from .locks.adapter import BleProvider
from .locks.callbacks import CallbackRegistry
from .locks.coordinator import LockCoordinator
from .locks.driver import LockDriver, LockState
from .locks.registry import build_driver
from .notify import Notifier, Vitals, keep_watchdog, watchdog_interval
from .reload import lockout_policy, reload_on, start_lock
from .statuspage import EventLog
from .store import NewRecord, Store, StoreError
from .sync.link import HubLink
from .sync.settings import SyncSettings

log = structlog.get_logger(__name__)

__all__ = [
    "STORE_FILE",
    "Hub",
    "build_hub",
    "flush_outbox",
    "lockout_policy",
    "read_admin_token",
    "run_gateway",
    "serve",
    "start_hub",
    "stop_hub",
    "watch_clock",
]

STORE_FILE = "hub.db"
# The clock floor is saved this often: after a power cut the hub's time can fall back at
# most this far behind what it had already seen.
FLOOR_SAVE_SECONDS = 60.0
# Trust in the clock is re-evaluated this often to report changes as clock.status records.
CLOCK_WATCH_SECONDS = 5.0
# Group or other permission bits on the admin token file expose it.
EXPOSING_BITS = 0o077
# Shutdown budget; TimeoutStopSec=45 in systemd/lockhub-gateway.service covers the sum with
# room to spare. In-flight requests get this long to finish: an unlock is one lock command
# and its confirmation (UNLOCK_CONFIRM_TIMEOUT, 15 s) plus room for a retry.
DRAIN_SECONDS = 20.0
# Then records still waiting for the cloud get this long to be acked, if the link is up: a
# connected hub's backlog after a drain is a few batches, acked in well under a second.
FLUSH_SECONDS = 5.0
FLUSH_POLL_SECONDS = 0.05


@dataclass
class Hub:
    """The running hub's parts."""

    config: GatewayConfig
    store: Store
    clock: TrustedClock
    engine: AccessEngine
    intake: CommandIntake
    coordinators: dict[str, LockCoordinator] = field(default_factory=dict)
    drivers: dict[str, LockDriver] = field(default_factory=dict)
    started: bool = False
    callbacks: CallbackRegistry = field(default_factory=CallbackRegistry)
    ble: BleProvider | None = None
    # The last lock events, for the installer status page (kinds and times only).
    activity: EventLog = field(default_factory=EventLog)
    # The MQTT link; readiness does not wait for it (the hub works offline): its state is in
    # /metrics and in the retained status message instead.
    link: HubLink | None = None
    # What a reload needs to build drivers and coordinators as build_hub did.
    source: str = "config"
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    monotonic: Callable[[], float] = time.monotonic

    def ready(self) -> dict[str, bool]:
        """Readiness checks for /readyz."""
        return {
            "store": True,
            "engine": self.started,
            "locks": bool(self.coordinators) or not self.config.locks,
        }

    def summary(self) -> str:
        """One line for `systemctl status`: locks, the MQTT link, the outbox."""
        locks = self.coordinators.values()
        reachable = sum(c.state.state is not LockState.UNREACHABLE for c in locks)
        if self.link is None:
            return f"{reachable}/{len(locks)} locks reachable"
        mqtt = "connected" if self.link.connected else "offline"
        depth = self.link.watch.depth
        return f"{reachable}/{len(locks)} locks reachable; mqtt {mqtt}; outbox {depth}"


# An admin token is a line of text; anything bigger is not one.
MAX_TOKEN_FILE_BYTES = 4096


def read_admin_token(path: Path | None) -> str | None:
    """The admin bearer token from its file (mode 0600), or None when no file is set."""
    if path is None:
        return None
    try:
        # No symlinks, and the mode is checked on the file actually opened, before reading.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise GatewayError(f"cannot read admin_token_file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as file:
        if stat.S_IMODE(os.fstat(file.fileno()).st_mode) & EXPOSING_BITS:
            raise GatewayError(
                f"admin_token_file {path} is readable by others; run `chmod 600 {path}`"
            )
        try:
            token = file.read(MAX_TOKEN_FILE_BYTES).decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise GatewayError(f"cannot read admin_token_file {path}: not a text token") from exc
    if len(token) < 16:
        raise GatewayError(f"admin_token_file {path} holds a token shorter than 16 characters")
    return token


async def build_hub(
    config: GatewayConfig,
    *,
    wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
    sync_check: Callable[[], bool] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    source: str = "config",
    sync_settings: SyncSettings | None = None,
    ble: BleProvider | None = None,
) -> Hub:
    """Open the store and build every part (nothing runs yet); ``source`` names the config.

    ``sync_check`` replaces the check of ``[access] clock_sync_flag`` (tests flip a value);
    ``sync_settings`` replaces the link's settings from ``[sync]`` (tests shorten timings);
    ``ble`` replaces the Bluetooth adapter (tests pass one on a fake bleak backend).
    """
    keys = load_identity(config.hub.state_dir)
    check = sync_check or sync_flag_check(config.access.clock_sync_flag)
    clock = TrustedClock(wall=wall, monotonic=monotonic, sync_check=check)
    # Drivers first: a config naming a driver this version lacks must fail before the store
    # opens (an open store's worker thread would keep the failed process alive).
    callbacks = CallbackRegistry()
    ble = ble or BleProvider(config.ble)
    drivers = {
        s.id: build_driver(
            s,
            now=clock.now,
            sleep=sleep,
            source=source,
            state_dir=config.hub.state_dir,
            callbacks=callbacks,
            ble=ble.transport,
        )
        for s in config.locks
    }
    store = await Store.open(
        config.hub.state_dir / STORE_FILE,
        signer=Signer(config.hub.id, keys.signing),
        hub_id=config.hub.id,
        now=clock.now,
    )
    floor = parse_floor(await store.kv_get(FLOOR_KV_KEY))
    if floor is not None:
        clock.restore_floor(floor)
    command_keys = load_command_keys(config.cloud.command_keys)
    settings = AccessSettings(
        grace=timedelta(seconds=config.access.grace_seconds),
        deny_untrusted=config.access.untrusted_clock_policy == "deny",
    )
    engine = AccessEngine(
        hub_id=config.hub.id,
        store=store,
        clock=clock,
        keys=keys,
        command_keys=command_keys,
        lockouts=Lockouts(store, lockout_policy(config), clock.now),
        settings=settings,
        sleep=sleep,
        monotonic=monotonic,
    )
    intake = CommandIntake(
        engine=engine,
        store=store,
        hub_id=config.hub.id,
        keys=command_keys,
        monotonic=monotonic,
    )
    hub = Hub(
        config,
        store,
        clock,
        engine,
        intake,
        drivers=drivers,
        callbacks=callbacks,
        ble=ble,
        source=source,
        sleep=sleep,
        monotonic=monotonic,
    )
    hub.link = HubLink(
        mqtt=config.mqtt,
        protocol=config.mqtt.protocol,
        engine=engine,
        intake=intake,
        store=store,
        signer=Signer(config.hub.id, keys.signing),
        command_keys=command_keys,
        settings=sync_settings or config.sync.settings(),
        monotonic=monotonic,
    )
    for lock_id, driver in drivers.items():
        hub.coordinators[lock_id] = LockCoordinator(
            driver,
            on_event=hub.activity.tap(engine.events.on_event),
            sleep=sleep,
            monotonic=monotonic,
        )
    engine.attach(hub.coordinators)
    return hub


async def start_hub(hub: Hub) -> None:
    """Load state and start the lock coordinators (side by side: one slow lock holds up none)."""
    await hub.engine.start()
    await hub.intake.start()
    if hub.ble is not None:
        await hub.ble.start()
    async with asyncio.TaskGroup() as group:
        for coordinator in hub.coordinators.values():
            group.create_task(start_lock(coordinator))
    hub.started = True


async def stop_hub(hub: Hub) -> None:
    """Stop everything in reverse order and close the store cleanly.

    Locks stop before the engine lets go of pending unlocks: a confirmation the lock already
    queued still becomes a PoD.
    """
    await hub.engine.provisioner.stop()
    await asyncio.gather(*(c.stop() for c in hub.coordinators.values()))
    await hub.engine.stop()
    if hub.ble is not None:
        await hub.ble.stop()
    # Only a trusted floor is kept (gateway.clock): a hub that never had trusted time writes
    # none, and one whose clock is untrusted now writes the trusted floor it had.
    floor = hub.clock.floor()
    if floor is not None:
        with contextlib.suppress(StoreError):
            await hub.store.kv_set(FLOOR_KV_KEY, format_floor(floor))
    await hub.store.close()


async def watch_clock(hub: Hub) -> None:
    """Write a clock.status record whenever trust in the clock changes.

    This poll is also what notices a change nothing announces (the sync flag file appearing,
    the wall clock stepped) when no request reads the clock: the reading wakes the engine's
    deadline loop through the clock's listeners (gateway.clock), so that loop never polls.
    """
    while True:
        status = hub.clock.poll_change()
        if status is not None:
            record = NewRecord("clock.status", {"clock": status.as_record()})
            await hub.store.append_records([record])
            log.info("clock.status", synced=status.synced, source=status.source)
            if status.source == "behind_floor":
                await hub.store.append_records(
                    [
                        alert(
                            "clock_behind_floor",
                            "warning",
                            "the wall clock went backwards",
                            status.as_record(),
                            {},
                        )
                    ]
                )
        await asyncio.sleep(CLOCK_WATCH_SECONDS)


async def flush_outbox(hub: Hub, notifier: Notifier, seconds: float = FLUSH_SECONDS) -> None:
    """While connected, wait (bounded) until the cloud acked every record."""
    link = hub.link
    if link is None or not link.connected or not await hub.store.unacked(1):
        return
    notifier.status("stopping: sending the outbox to the cloud")
    for _ in range(round(seconds / FLUSH_POLL_SECONDS)):
        if not link.connected or not await hub.store.unacked(1):
            break
        await asyncio.sleep(FLUSH_POLL_SECONDS)
    log.info("outbox.flush_ended", depth=await hub.store.outbox_depth(), connected=link.connected)


async def _listen(hub: Hub) -> web.AppRunner:
    host, port = hub.config.api.host, hub.config.api.port
    parts = ApiParts(
        engine=hub.engine,
        intake=hub.intake,
        metrics=hub_metrics(hub.engine, hub.link, hub.intake),
        admin_token=read_admin_token(hub.config.api.admin_token_file),
        ready=hub.ready,
        callbacks=hub.callbacks,
        link=hub.link,
        activity=hub.activity,
    )
    # cleanup() stops listening, lets requests in flight finish for this long, then cancels.
    runner = web.AppRunner(build_app(parts), access_log=None, shutdown_timeout=DRAIN_SECONDS)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise GatewayError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    log.info("api.listening", host=host, port=port)
    return runner


async def serve(
    hub: Hub,
    stop: asyncio.Event,
    *,
    notifier: Notifier | None = None,
    reload: asyncio.Event | None = None,
    config_path: Path | None = None,
) -> None:
    """Run the hub's background work and its local API until ``stop`` is set.

    ``reload`` (set on SIGHUP) re-reads ``config_path``. Stopping drains requests in flight,
    then flushes the outbox while connected, then stops the background work.
    """
    notifier = notifier or Notifier(None)
    runner = await _listen(hub)
    drained = False

    async def save_floor(moment: datetime) -> None:
        await hub.store.kv_set(FLOOR_KV_KEY, format_floor(moment))

    try:
        async with asyncio.TaskGroup() as group:
            work = [
                group.create_task(hub.engine.run()),
                group.create_task(keep_floor(hub.clock, save_floor, interval=FLOOR_SAVE_SECONDS)),
                group.create_task(watch_clock(hub)),
            ]
            if hub.link is not None:
                work.append(group.create_task(hub.link.run()))
            helpers: list[asyncio.Task[None]] = []
            interval = watchdog_interval()
            if interval is not None:
                vitals = Vitals(hub.store, hub.link)
                pinger = keep_watchdog(notifier, interval, vitals, hub.summary)
                helpers.append(group.create_task(pinger))
            if reload is not None and config_path is not None:
                helpers.append(group.create_task(reload_on(reload, hub, config_path, notifier)))
            notifier.ready(hub.summary())
            await stop.wait()
            for task in helpers:
                task.cancel()
            notifier.stopping("stopping: finishing requests in flight")
            log.info("gateway.stopping")
            drained = True
            await runner.cleanup()
            await flush_outbox(hub, notifier)
            for task in work:
                task.cancel()
    finally:
        if not drained:
            await runner.cleanup()


async def run_gateway(
    config: GatewayConfig,
    stop: asyncio.Event | None = None,
    *,
    source: str = "config",
    notifier: Notifier | None = None,
) -> None:
    """Run the hub until SIGTERM/SIGINT (or ``stop``); SIGHUP reloads ``source``, its file."""
    stop = stop or asyncio.Event()
    notifier = notifier or Notifier.from_env()
    reload = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig, handler in ((signal.SIGTERM, stop.set), (signal.SIGINT, stop.set)):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, reload.set)
    # The watchdog kills a stuck hub with SIGABRT: leave the Python stacks in the journal.
    if not faulthandler.is_enabled():
        faulthandler.enable()
    hub = await build_hub(config, source=source)
    try:
        await start_hub(hub)
        log.info(
            "gateway.started", hub_id=config.hub.id, locks=len(hub.coordinators), pid=os.getpid()
        )
        await serve(hub, stop, notifier=notifier, reload=reload, config_path=Path(source))
    finally:
        notifier.stopping("stopping: closing the store")
        await stop_hub(hub)
        log.info("gateway.stopped", hub_id=config.hub.id)
