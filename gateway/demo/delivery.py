"""The delivery day: windows through the cloud API, couriers at the doors, a guesser locked
out, an outage with deliveries during it, and a code typed on a lock's own keypad."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import aiohttp

from cloud_sync.protocol.chain import verify_chain

from .scene import GUESSER_ADDRESS, HUB_ID, RECOVERY_SECONDS, Demo, DemoFailedError, expect

COURIER = {"id": "courier-7", "name": "Sam"}
# Wrong guesses until the hub locks a source out of a lock ([access] lockout_threshold).
GUESSES = 5
# Deliveries made while the site is offline, and the lock each goes to.
OFFLINE_ROUND = {
    "parcel-2001": "front-door",
    "parcel-2002": "loading-dock",
    "parcel-2003": "loading-dock",
}
LATE_TASK = "parcel-2004"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


async def step_window(demo: Demo) -> str:
    """A hub-enforced window for the front door: the code comes back once, then reaches the hub."""
    started = time.monotonic()
    window = await demo.create_window("parcel-1001", "front-door", courier=COURIER)
    code = window["code"]
    expect(len(code) == 8 and code.isdigit(), "the code is not 8 digits")
    again = await demo.cloud_api("GET", f"/locks/access-windows/{window['window_id']}")
    expect(again.status == 200 and "code" not in again.body, "the code was shown a second time")
    await demo.window_on_hub(window)
    took = time.monotonic() - started
    return (
        f"201 with an 8-digit code (no-store, never shown again); window {window['window_id']} "
        f"reached the hub over MQTT and the cloud saw 'applied' after {_ms(took)}"
    )


async def step_courier(demo: Demo) -> str:
    """The courier types the code at the hub; the door opens once; the PoD reaches the cloud."""
    code = demo.windows["parcel-1001"]["code"]
    reply = await demo.unlock("front-door", code)
    expect(reply.status == 200, f"the courier's code was refused: {reply.status} {reply.body}")
    expect(demo.sim("front-door").snapshot().state.value == "unlocked", "the door stayed locked")
    demo.pods["parcel-1001"] = reply.body["pod_id"]
    again = await demo.unlock("front-door", code)
    expect(again.status == 403, f"a single-use code opened twice ({again.status})")
    started = time.monotonic()
    task = await demo.delivered("parcel-1001")
    took = time.monotonic() - started
    expect(task["pod"]["pod_id"] == reply.body["pod_id"], "the cloud holds another PoD")
    return (
        f"200 unlocked, the same code again 403; GET /tasks/parcel-1001: delivered, "
        f"pod {task['pod']['pod_id']} ({task['pod']['method']}) after {_ms(took)}"
    )


async def step_lockout(demo: Demo) -> str:
    """Someone at another terminal guesses codes: locked out with 423 and Retry-After."""
    cloud, _ = demo.running()
    guesses = [f"{n:08d}" for n in range(31_415_926, 31_415_926 + GUESSES + 1)]
    guesses = [g for g in guesses if g not in demo.codes][: GUESSES + 1]
    connector = aiohttp.TCPConnector(local_addr=(GUESSER_ADDRESS, 0))
    async with aiohttp.ClientSession(connector=connector) as guesser:
        try:
            answers = [(await demo.unlock("front-door", g, guesser)).status for g in guesses[:-1]]
            last = await demo.unlock("front-door", guesses[-1], guesser)
        except aiohttp.ClientConnectorError as exc:
            raise DemoFailedError(f"cannot call from {GUESSER_ADDRESS}: {exc}") from exc
    expect(answers == [403] * GUESSES, f"wrong codes answered {answers}")
    expect(last.status == 423, f"no lockout after {GUESSES} wrong codes ({last.status})")
    retry_after = last.headers.get("Retry-After", "")
    expect(retry_after.isdigit() and int(retry_after) > 0, "the 423 has no Retry-After")

    async def reported() -> bool:
        return any(r.type == "access.lockout" for r in await cloud.store.records(HUB_ID))

    await demo.wait_for("the lockout record to reach the cloud", reported)
    return (
        f"{GUESSES} x 403 from {GUESSER_ADDRESS}, then 423 Retry-After {retry_after} s; "
        "the signed access.lockout record is in the cloud"
    )


async def step_outage(demo: Demo) -> str:
    """The site goes offline; couriers keep opening doors; PoDs wait in the hub's outbox."""
    _, hub = demo.running()
    link, uplink = hub.link, demo.uplink
    if link is None or uplink is None:
        raise DemoFailedError("the hub has no MQTT link")
    for task_id, lock_id in OFFLINE_ROUND.items():
        await demo.window_on_hub(await demo.create_window(task_id, lock_id, courier=COURIER))

    async def quiet() -> bool:
        return await hub.store.outbox_depth() == 0

    # Cut between two acks rather than during one (see RECOVERY_SECONDS).
    await demo.wait_for("the hub's outbox to drain before the outage", quiet)
    await uplink.cut()

    async def offline() -> bool:
        return not link.connected

    await demo.wait_for("the hub to notice the outage", offline)
    # The cloud still takes windows; this one waits for the site to come back.
    await demo.create_window(LATE_TASK, "front-door", courier=COURIER)
    for task_id, lock_id in OFFLINE_ROUND.items():
        reply = await demo.unlock(lock_id, demo.windows[task_id]["code"])
        expect(reply.status == 200, f"{lock_id} refused a valid code offline: {reply.body}")
        demo.pods[task_id] = reply.body["pod_id"]
    for task_id in OFFLINE_ROUND:
        status = (await demo.task(task_id))["status"]
        expect(status != "delivered", f"{task_id} reached the cloud through a dead link")
    depth = await hub.store.outbox_depth()
    expect(depth >= len(OFFLINE_ROUND), f"only {depth} records wait in the outbox")
    cut = "broker stopped" if demo.mqtt_url is None else "hub's uplink cut"
    return (
        f"{cut}, hub offline; {len(OFFLINE_ROUND)} doors opened with their codes (200), "
        f"the cloud still shows them pending; {depth} signed records wait in the outbox; "
        f"{LATE_TASK}'s window created meanwhile waits at the cloud"
    )


def _pod_ids(payloads: list[bytes]) -> Counter[str]:
    bodies = [json.loads(p) for p in payloads]
    return Counter(b["body"]["pod_id"] for b in bodies if b["type"] == "pod.recorded")


async def step_recovery(demo: Demo) -> str:
    """The link comes back: every PoD arrives exactly once, in one unbroken chain."""
    cloud, hub = demo.running()
    link, uplink = hub.link, demo.uplink
    if link is None or uplink is None:
        raise DemoFailedError("the hub has no MQTT link")
    started = time.monotonic()
    await uplink.restore()
    for task_id in OFFLINE_ROUND:
        task = await demo.delivered(task_id, RECOVERY_SECONDS)
        expect(task["pod"]["pod_id"] == demo.pods[task_id], f"{task_id} has another PoD")
    caught_up = time.monotonic() - started
    late = demo.windows[LATE_TASK]
    await demo.window_on_hub(late)
    reply = await demo.unlock("front-door", late["code"])
    expect(reply.status == 200, f"the late window's code was refused: {reply.body}")
    demo.pods[LATE_TASK] = reply.body["pod_id"]
    await demo.delivered(LATE_TASK)

    async def drained() -> bool:
        return await hub.store.outbox_depth() == 0

    await demo.wait_for("the cloud's acks to empty the outbox", drained)
    stored = await cloud.store.records(HUB_ID)
    seqs = [r.seq for r in stored]
    expect(seqs == list(range(1, len(seqs) + 1)), "the cloud's records have gaps or repeats")
    verify_chain([r.payload for r in stored])
    pods = _pod_ids([r.payload for r in stored])
    expect(set(demo.pods.values()) <= set(pods), "a PoD is missing in the cloud")
    expect(all(n == 1 for n in pods.values()), f"a PoD was stored twice: {pods.most_common(1)}")
    return (
        f"reconnected, {len(OFFLINE_ROUND)} offline deliveries delivered after "
        f"{_ms(caught_up)}; the late window reached the hub and opened the door; cloud records "
        f"1..{len(seqs)} once each, chain verified; {len(pods)} PoDs, each exactly once"
    )


async def step_keypad(demo: Demo) -> str:
    """A lock-enforced window: the hub programs the parcel room's keypad; the courier types it."""
    window = await demo.create_window("parcel-3001", "parcel-room", enforcement="lock")
    code: str = window["code"]
    await demo.window_on_hub(window, status="set_on_lock")
    keypad = demo.sim("parcel-room")
    expect(len(keypad.keypad_codes()) == 1, "the code is not on the parcel room's keypad")
    expect(keypad.press(code), "the keypad refused the programmed code")
    task: dict[str, Any] = await demo.delivered("parcel-3001")
    method = task["pod"]["method"]
    expect(method == "lock_keypad", f"the PoD says {method}, not lock_keypad")
    demo.pods["parcel-3001"] = task["pod"]["pod_id"]
    return (
        f"a {len(code)}-digit keypad-safe code set on the lock (cloud saw 'set_on_lock'), typed "
        f"on the keypad; delivered with a lock_keypad PoD from the lock's own event"
    )
