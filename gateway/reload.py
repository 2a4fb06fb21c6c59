"""SIGHUP: re-read the hub config and apply, while running, what can change safely.

Applied: ``[log]`` (level, format), ``[access]`` (grace, untrusted clock policy, lockout
thresholds) and ``[[locks]]`` (a removed lock stops, a new one starts, a changed one restarts).
The rest (hub id, state_dir, mqtt, cloud keys, api, sync, ble) is bound to open files, keys and
sockets: a reload that changes it says so in the log and applies the others. A config that
fails to load, or names a lock whose driver cannot be built, changes nothing: the error is
logged naming the file and the field, and the running config stays.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from cloud_sync.protocol.tomlconfig import LogSection

from .access.engine import AccessEngine
from .access.lockout import LockoutPolicy
from .clock import sync_flag_check
from .config import AccessSection, GatewayConfig, load_gateway_config
from .errors import ConfigError
from .locks.coordinator import LockCoordinator
from .locks.driver import LockDriver, LockError
from .locks.registry import build_driver
from .logs import configure_logging

if TYPE_CHECKING:
    from .daemon import Hub
    from .notify import Notifier

log = structlog.get_logger(__name__)

# The config sections a reload applies; every other one is read at start only.
RELOADABLE = ("log", "access", "locks")


def lockout_policy(config: GatewayConfig) -> LockoutPolicy:
    """The lockout policy of ``[access]``."""
    access = config.access
    return LockoutPolicy(
        threshold=access.lockout_threshold,
        lock_threshold=access.lockout_lock_threshold,
        base_seconds=access.lockout_base_seconds,
        cap_seconds=access.lockout_cap_seconds,
    )


def apply_logging(section: LogSection) -> None:
    """Configure logging from ``[log]`` (loggers are never cached: see gateway.logs)."""
    configure_logging(section.level, section.format)


async def start_lock(coordinator: LockCoordinator) -> None:
    """Start a lock's coordinator and read its state; a lock out of reach now is not fatal."""
    await coordinator.start()
    with contextlib.suppress(LockError):
        await coordinator.status()


@dataclass(slots=True)
class LockPlan:
    """What a reload does to locks: ids to stop, and the new drivers to start."""

    stop: list[str] = field(default_factory=list)
    start: dict[str, LockDriver] = field(default_factory=dict)


def plan_locks(hub: Hub, new: GatewayConfig) -> LockPlan:
    """Compare the running locks with ``new``; build the new drivers (ConfigError if one fails)."""
    old = {lock.id: lock for lock in hub.config.locks}
    plan = LockPlan(stop=[lock_id for lock_id in old if new.lock(lock_id) is None])
    for section in new.locks:
        if old.get(section.id) == section:
            continue
        if section.id in old:
            plan.stop.append(section.id)
        plan.start[section.id] = build_driver(
            section,
            now=hub.clock.now,
            sleep=hub.sleep,
            source=hub.source,
            state_dir=hub.config.hub.state_dir,
            callbacks=hub.callbacks,
            ble=hub.ble.transport if hub.ble is not None else None,
        )
    return plan


async def apply_locks(hub: Hub, plan: LockPlan, *, ble_was_in_use: bool) -> None:
    """Stop the planned coordinators, then start the new ones and resume their keypad work."""
    for lock_id in plan.stop:
        coordinator = hub.coordinators.pop(lock_id)
        hub.engine.coordinators.pop(lock_id, None)
        hub.drivers.pop(lock_id, None)
        hub.callbacks.unregister(lock_id)
        await coordinator.stop()
        log.info("lock.removed", lock_id=lock_id)
    if hub.ble is not None and hub.ble.in_use and not ble_was_in_use:
        await hub.ble.start()  # the first BLE lock of this hub arrived with the reload
    for lock_id, driver in plan.start.items():
        coordinator = LockCoordinator(
            driver,
            on_event=hub.activity.tap(hub.engine.events.on_event),
            sleep=hub.sleep,
            monotonic=hub.monotonic,
        )
        hub.drivers[lock_id] = driver
        hub.coordinators[lock_id] = coordinator
        hub.engine.coordinators[lock_id] = coordinator
        await start_lock(coordinator)
        for row in hub.engine.cache:
            if row.lock_id == lock_id:
                hub.engine.provisioner.consider(row)
        log.info("lock.added", lock_id=lock_id, driver=driver.vendor)


async def retune_access(engine: AccessEngine, access: AccessSection, policy: LockoutPolicy) -> None:
    """Give the running engine ``[access]``'s grace, clock policy and lockout thresholds.

    The engine has no public way to change its policy yet, so this sets the fields its parts
    copied at construction (AccessEngine.retune would be their home). A new grace moves every
    live window's deadline; codes already in lock keypads keep the bounds they were given.
    """
    grace = timedelta(seconds=access.grace_seconds)
    deny = access.untrusted_clock_policy == "deny"
    engine.lockouts._policy = policy  # private: see the docstring
    if grace == engine.settings.grace:
        engine.settings = replace(engine.settings, deny_untrusted=deny)
        return
    async with engine.cache.write_lock:
        engine.settings = replace(engine.settings, grace=grace, deny_untrusted=deny)
        engine.cache.grace = grace
        engine.events._grace = grace
        engine.provisioner._grace = grace
        for row in list(engine.cache):
            engine.cache.requeue(row.window_id)
    engine._wake.set()  # the deadline loop sleeps until the old next deadline


def pinned_changes(running: GatewayConfig, new: GatewayConfig) -> list[str]:
    """Sections that differ but apply only at the next start."""
    return [
        name
        for name in GatewayConfig.model_fields
        if name not in RELOADABLE and getattr(running, name) != getattr(new, name)
    ]


async def reload_hub(hub: Hub, path: Path) -> bool:
    """Re-read ``path`` and apply its reloadable sections; False (logged) when it is refused."""
    ble_was_in_use = hub.ble is not None and hub.ble.in_use
    try:
        new = load_gateway_config(path)
        plan = plan_locks(hub, new)
    except ConfigError as exc:
        log.error("config.reload_refused", source=exc.source, errors=list(exc.lines))
        return False
    pinned = pinned_changes(hub.config, new)
    if pinned:
        log.warning("config.restart_needed", sections=pinned)
    apply_logging(new.log)
    if new.access.clock_sync_flag != hub.config.access.clock_sync_flag:
        hub.clock.set_sync_check(sync_flag_check(new.access.clock_sync_flag))
        log.info("clock.sync_flag_changed")
    await retune_access(hub.engine, new.access, lockout_policy(new))
    await apply_locks(hub, plan, ble_was_in_use=ble_was_in_use)
    hub.config = hub.config.model_copy(
        update={"log": new.log, "access": new.access, "locks": new.locks}
    )
    log.info(
        "config.reloaded",
        source=str(path),
        log_level=new.log.level,
        locks=sorted(hub.coordinators),
        stopped=plan.stop,
        started=sorted(plan.start),
    )
    return True


async def reload_on(requests: asyncio.Event, hub: Hub, path: Path, notifier: Notifier) -> None:
    """Reload ``path`` each time ``requests`` is set (SIGHUP), one reload at a time."""
    while True:
        await requests.wait()
        requests.clear()
        notifier.reloading()
        await reload_hub(hub, path)
        notifier.ready(hub.summary())
