"""The hub's Prometheus metrics: unlock attempts, windows, outbox, locks, breakers, MQTT link."""

from __future__ import annotations

from collections.abc import Iterable

from .access.engine import AccessEngine
from .access.intake import CommandIntake
from .locks.breaker import BreakerState
from .locks.driver import LockState
from .metrics import Registry
from .sync.link import HubLink

Samples = Iterable[tuple[dict[str, str], float]]


def hub_metrics(
    engine: AccessEngine, link: HubLink | None = None, intake: CommandIntake | None = None
) -> Registry:
    """A registry reading the engine's (and the MQTT link's, the intake's) state per scrape."""
    registry = Registry()

    def attempts() -> Samples:
        return [({"result": r}, float(n)) for r, n in sorted(engine.attempts.items())]

    def windows() -> Samples:
        return [({"state": s}, float(n)) for s, n in sorted(engine.cache.counts().items())]

    def lock_states() -> Samples:
        for lock_id, coordinator in sorted(engine.coordinators.items()):
            current = coordinator.state.state
            for state in LockState:
                yield {"lock_id": lock_id, "state": state.value}, float(state is current)

    def breakers() -> Samples:
        for lock_id, coordinator in sorted(engine.coordinators.items()):
            current = coordinator.breaker
            for state in BreakerState:
                yield {"lock_id": lock_id, "state": state.value}, float(state is current)

    def batteries() -> Samples:
        for lock_id, coordinator in sorted(engine.coordinators.items()):
            percent = coordinator.state.battery_percent
            if percent is not None:
                yield {"lock_id": lock_id}, float(percent)

    def lockouts() -> Samples:
        active = [lo for lo in engine.lockouts.snapshot() if lo.locked_until is not None]
        return [({}, float(len(active)))]

    registry.gauge(
        "lockhub_unlock_attempts_total", "Unlock attempts by result.", attempts, "counter"
    )
    registry.gauge("lockhub_windows", "Windows by state.", windows)
    registry.gauge(
        "lockhub_outbox_depth",
        "Records waiting for the cloud's ack.",
        lambda: [({}, float(engine.outbox_depth))],
    )
    registry.gauge("lockhub_lock_state", "1 for each lock's current state.", lock_states)
    registry.gauge("lockhub_lock_battery_percent", "Battery charge by lock.", batteries)
    registry.gauge(
        "lockhub_lock_breaker_state", "1 for each lock's circuit breaker state.", breakers
    )
    registry.gauge("lockhub_lockouts", "Lockout entries with an end time set.", lockouts)
    registry.gauge(
        "lockhub_store_low_space",
        "1 while the store is in low-space mode (reserve released, new windows refused).",
        lambda: [({}, float(engine.store.low_space))],
    )
    registry.gauge(
        "lockhub_clock_synced",
        "1 while the hub trusts its clock.",
        lambda: [({}, float(engine.clock.trusted()))],
    )
    if link is not None:
        link_metrics(registry, link)
    if intake is not None:
        unverified = intake.unverified
        registry.gauge(
            "lockhub_commands_unverified_total",
            "Commands that failed verification (bad signature, unknown kid, malformed).",
            lambda: [({"reason": r}, float(n)) for r, n in sorted(unverified.items())],
            "counter",
        )
    return registry


def link_metrics(registry: Registry, link: HubLink) -> None:
    """Series of the MQTT link: connected, last ack age, records published, connects."""

    def ack_age() -> Samples:
        at = link.last_ack_at
        return [] if at is None else [({}, max(0.0, link.clock() - at))]

    registry.gauge(
        "lockhub_mqtt_connected",
        "1 while the MQTT link is connected.",
        lambda: [({}, float(link.connected))],
    )
    registry.gauge(
        "lockhub_sync_last_ack_age_seconds",
        "Seconds since the cloud's last verified ack (absent before the first).",
        ack_age,
    )
    registry.gauge(
        "lockhub_sync_published_records_total",
        "Records published on up/records (resends included).",
        lambda: [({}, float(link.pump.published_records))],
        "counter",
    )
    registry.gauge(
        "lockhub_sync_acks_refused_total",
        "Ack messages refused (malformed, bad signature, another hub's): nothing acked.",
        lambda: [({}, float(link.refused_acks))],
        "counter",
    )
    registry.gauge(
        "lockhub_mqtt_connects_total",
        "Successful connections to the broker.",
        lambda: [({}, float(link.connects))],
        "counter",
    )
