"""Lock events become records: jams, batteries, doors, keypad denials, late confirmations."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.access.decide import Grant
from gateway.access.events import PENDING_TTL_SECONDS, EventRecorder, Pending, relock_key
from gateway.access.provisioning import Provisioner
from gateway.access.windows import WindowCache
from gateway.clock import TrustedClock
from gateway.locks.driver import EventKind, LockEvent, Trigger
from gateway.store import Store
from gateway.testing import DEFAULT_START

from .harness import HubHarness, running_hub


def of_type(records: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [r["body"] for r in records if r["type"] == type_]


def lock_events(records: list[dict[str, Any]]) -> list[str]:
    return [b["event"] for b in of_type(records, "lock.event")]


def alert_kinds(records: list[dict[str, Any]]) -> list[str]:
    return [b["kind"] for b in of_type(records, "hub.alert")]


async def test_a_jam_is_recorded_and_alerted_and_the_unlock_answers_503(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(hub.command("window.upsert", hub.upsert("w-j", "36925814")))
        hub.sim("front-door").jam()
        assert await hub.unlock("front-door", code="36925814") == (
            503,
            {"error": "lock_unavailable"},
        )
        await hub.quiet()
        records = await hub.records()
        assert "jammed" in lock_events(records)
        (alert,) = of_type(records, "hub.alert")
        assert (alert["kind"], alert["severity"]) == ("lock_jammed", "critical")
        assert alert["details"]["lock_id"] == "front-door"
        assert of_type(records, "pod.recorded") == []
        locks = (await hub.admin("/v1/admin/locks"))["locks"]
        assert locks[0]["state"] == "jammed"


async def test_a_low_battery_alerts_once_when_it_crosses_below(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        sim = hub.sim("front-door")
        for percent in (50, 15, 10, 80, 90):  # down across, further down, recovered
            sim.set_battery(percent)
            await hub.advance(0)
        records = await hub.records()
        batteries = [
            b["details"]["battery_percent"]
            for b in of_type(records, "lock.event")
            if b["event"] == "battery"
        ]
        assert batteries == [50, 15, 10, 80, 90]
        assert alert_kinds(records) == ["battery_low"]

        sim.set_battery(5)  # low again after a recovery: a new alert
        await hub.advance(0)
        assert alert_kinds(await hub.records()) == ["battery_low", "battery_low"]


async def test_door_and_keypad_events_are_recorded(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(hub.command("window.upsert", hub.upsert("w-d", "14725836")))
        status, body = await hub.unlock("front-door", code="14725836")
        assert status == 200
        sim = hub.sim("front-door")
        assert sim.open_door()
        await hub.advance(10)  # past the relock delay: the lock waits for the door
        sim.close_door()
        await hub.advance(0)  # the relock timer starts
        await hub.advance(5)
        assert not hub.sim("parcel-room").press("00000000")
        await hub.advance(0)

        records = await hub.records()
        front = [b["event"] for b in of_type(records, "lock.event") if b["lock_id"] == "front-door"]
        assert front == ["door_opened", "door_closed", "locked"]
        (denied,) = [b for b in of_type(records, "lock.event") if b["event"] == "keypad_denied"]
        assert denied["lock_id"] == "parcel-room"
        relock = of_type(records, "lock.event")[2]
        assert relock["details"]["pod_id"] == body["pod_id"]
        assert alert_kinds(records) == []


async def test_a_confirmation_after_the_api_gave_up_still_becomes_the_windows_pod(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        engine = hub.hub.engine
        engine.settings = dataclasses.replace(engine.settings, confirm_timeout=0.0)
        await hub.send(hub.command("window.upsert", hub.upsert("w-late", "25836914")))
        assert await hub.unlock("front-door", code="25836914") == (
            503,
            {"error": "lock_unavailable"},
        )
        await hub.quiet()

        records = await hub.records()
        (pod,) = of_type(records, "pod.recorded")
        assert (pod["window_id"], pod["method"]) == ("w-late", "hub_code")
        assert alert_kinds(records) == []
        assert engine.attempts == {"unconfirmed": 1}
        # The use commits with the PoD; the cache takes the row right after that commit.
        for _ in range(200):
            window = engine.cache.get("w-late")
            if window is not None and window.uses == 1:
                break
            await asyncio.sleep(0.01)
        assert window is not None
        assert window.uses == 1


class Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def recorder_on(
    hub: HubHarness, monotonic: Monotonic
) -> tuple[EventRecorder, Store, WindowCache]:
    """An EventRecorder over the hub's store and windows, with its own monotonic clock."""
    engine = hub.hub.engine
    clock: TrustedClock = engine.clock
    recorder = EventRecorder(
        store=engine.store,
        cache=engine.cache,
        clock=clock,
        provisioner=engine.provisioner,
        grace=timedelta(0),
        monotonic=monotonic,
    )
    assert isinstance(engine.provisioner, Provisioner)
    return recorder, engine.store, engine.cache


def unlocked(request_id: str | None, trigger: Trigger = Trigger.REMOTE) -> LockEvent:
    return LockEvent(
        lock_id="front-door",
        kind=EventKind.UNLOCKED,
        at=DEFAULT_START,
        vendor="sim",
        vendor_event_id=f"ev-{request_id}",
        trigger=trigger,
        request_id=request_id,
    )


async def test_a_pending_unlock_older_than_its_ttl_is_not_attributed(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(hub.command("window.upsert", hub.upsert("w-ttl", "96385274")))
        monotonic = Monotonic()
        recorder, _, cache = await recorder_on(hub, monotonic)
        window = cache.get("w-ttl")
        assert window is not None
        grant = Grant(window, "hub_code", "code:test")
        fresh = recorder.expect(Pending("req-fresh", "front-door", grant, "127.0.0.1"))
        assert recorder.in_flight() == {"w-ttl": 1}
        # A lock that does not echo the request id: the oldest pending unlock of the lock.
        await recorder.on_event(unlocked(None, Trigger.UNKNOWN))
        pod_id = fresh.future.result()

        stale = recorder.expect(Pending("req-stale", "front-door", grant, "127.0.0.1"))
        monotonic.now += PENDING_TTL_SECONDS
        assert recorder.in_flight() == {}
        assert stale.future.cancelled()
        await recorder.on_event(unlocked("req-stale"))

        records = await hub.records()
        pods = of_type(records, "pod.recorded")
        assert [p["pod_id"] for p in pods] == [pod_id]
        late = of_type(records, "lock.event")[-1]
        assert (late["event"], late["unattributed"]) == ("unlocked", True)
        assert alert_kinds(records) == ["unattributed_unlock"]


async def test_a_keypad_unlock_with_an_unknown_code_id_is_unattributed(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        recorder, _, _ = await recorder_on(hub, Monotonic())
        event = dataclasses.replace(unlocked(None, Trigger.KEYPAD), keypad_code_id=7)
        await recorder.on_event(event)
        records = await hub.records()
        (body,) = of_type(records, "lock.event")
        assert (body["unattributed"], body["details"]["keypad_code_id"]) == (True, 7)
        assert alert_kinds(records) == ["unattributed_unlock"]


def relocked() -> LockEvent:
    return LockEvent(
        lock_id="front-door",
        kind=EventKind.LOCKED,
        at=DEFAULT_START,
        vendor="sim",
        vendor_event_id="ev-relock",
        trigger=Trigger.UNKNOWN,
    )


def relock_pod_ids(records: list[dict[str, Any]]) -> list[str | None]:
    return [
        b["details"].get("pod_id") for b in of_type(records, "lock.event") if b["event"] == "locked"
    ]


async def test_a_relock_reported_after_a_restart_still_names_its_pod(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(hub.command("window.upsert", hub.upsert("w-rs", "15935746")))
        status, body = await hub.unlock("front-door", code="15935746")
        assert status == 200
        cloud, seq = hub.cloud, hub.seq
        # Stopped before the lock's own relock (5 s later on the simulated lock).
        assert relock_pod_ids(await hub.records()) == []
    async with running_hub(tmp_path, cloud=cloud) as hub:
        hub.seq = seq
        key = relock_key("front-door")
        assert await hub.hub.store.kv_get(key) == body["pod_id"]
        await hub.hub.engine.events.on_event(relocked())
        await hub.hub.engine.events.on_event(relocked())  # a second relock ends no PoD
        assert relock_pod_ids(await hub.records()) == [body["pod_id"], None]
        assert await hub.hub.store.kv_get(key) is None


async def test_an_unattributed_unlock_ends_the_wait_for_an_earlier_pods_relock(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(hub.command("window.upsert", hub.upsert("w-un", "75395146")))
        assert (await hub.unlock("front-door", code="75395146"))[0] == 200
        events = hub.hub.engine.events
        await events.on_event(unlocked(None, Trigger.MANUAL))  # the thumb turn, say
        await events.on_event(relocked())
        assert relock_pod_ids(await hub.records()) == [None]
        assert await hub.hub.store.kv_get(relock_key("front-door")) is None
