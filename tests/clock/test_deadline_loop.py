"""The engine's deadline loop: it sleeps exactly until the next deadline and never polls.

Each pass of the loop is counted (``AccessEngine.iterations``); the hub runs on a FakeClock, so
a pass happens only when the loop asked to wake then, or something woke it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cloud_sync import protocol as p
from cloud_sync.protocol.fields import parse_rfc3339
from gateway.clock import CLOCK_STEP_NOTICE_SECONDS
from tests.access.harness import HubHarness, running_hub
from tests.access.test_offline_e2e import bodies

STEP = timedelta(minutes=10)


def expiries(records: list[dict[str, Any]]) -> list[tuple[str, datetime]]:
    """(window_id, the record's time) of every ``expired`` window.status."""
    return [
        (str(r["body"]["window_id"]), parse_rfc3339(str(r["issued_at"])))
        for r in records
        if r["type"] == "window.status" and r["body"]["status"] == "expired"
    ]


async def window(
    hub: HubHarness, window_id: str, code: str, ends: timedelta, *, issued_ago: float = 0
) -> datetime:
    """Push a hub window open from now for ``ends``; return its deadline (no grace here).

    ``issued_ago`` seconds old, the command's signed time gives a lower bound that far behind.
    """
    end = hub.clock.now() + ends
    body = hub.upsert(window_id, code, ends_at=p.rfc3339(end))
    issued_at = hub.clock.now() - timedelta(seconds=issued_ago)
    await hub.send(hub.command("window.upsert", body, issued_at=issued_at))
    await hub.quiet()
    return end


async def test_expiry_lands_at_the_deadline_with_no_wakeup_before_it(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        engine = hub.hub.engine
        deadline = await window(hub, "w-3h", "31313131", timedelta(hours=3))
        before = engine.iterations
        # 17 steps of 10 minutes: nearly three hours pass without a single pass of the loop.
        for _ in range(17):
            await hub.advance(STEP.total_seconds())
        assert engine.iterations == before
        assert expiries(await hub.records()) == []
        await hub.advance(STEP.total_seconds())  # exactly onto the deadline
        assert hub.clock.now() == deadline
        assert expiries(await hub.records()) == [("w-3h", deadline)]
        assert engine.iterations == before + 1
        # With no deadline left the loop waits for a wake only: a day passes without a pass.
        await hub.advance(86_400)
        assert engine.iterations == before + 1
        assert engine.cache.get("w-3h") is not None


async def test_an_idle_hub_never_wakes(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.quiet()
        before = hub.hub.engine.iterations
        for _ in range(24):
            await hub.advance(3600)
        assert hub.hub.engine.iterations == before
        assert hub.clock.sleepers == 0  # nothing, not even the loop, sleeps on the clock


async def test_a_new_earlier_deadline_wakes_the_loop(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        late = await window(hub, "w-late", "41414141", timedelta(hours=5))
        early = await window(hub, "w-early", "51515151", timedelta(minutes=30))
        await hub.advance(30 * 60)
        await hub.advance(late.timestamp() - hub.clock.now().timestamp())
        assert expiries(await hub.records()) == [("w-early", early), ("w-late", late)]


async def test_a_forward_step_of_the_wall_clock_brings_expiry_forward(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        engine = hub.hub.engine
        deadline = await window(hub, "w-step", "61616161", timedelta(hours=1))
        before = engine.iterations
        # NTP steps the (trusted) clock two hours ahead: the loop's monotonic sleep of an hour
        # would end an hour late; the clock's listener wakes it at the next reading instead.
        hub.clock.set_wall(hub.clock.now() + timedelta(hours=2))
        stepped_at = hub.clock.now()
        assert stepped_at - deadline > timedelta(seconds=CLOCK_STEP_NOTICE_SECONDS)
        assert hub.hub.clock.trusted()  # the reading that notices the step
        await hub.quiet()
        assert expiries(await hub.records()) == [("w-step", stepped_at)]
        assert engine.iterations == before + 1


async def test_a_window_ending_during_a_small_step_back_expires_on_time(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        # Signed cloud time a minute old: its bound stays below the wall after the step.
        deadline = await window(hub, "w-back", "71717171", timedelta(minutes=10), issued_ago=60)
        # A step back within the tolerance: now() holds the floor, the loop wakes at the
        # monotonic end of its sleep, early by the wall, and sleeps again until now() is due.
        before = hub.hub.engine.iterations
        hub.clock.set_wall(hub.clock.now() - timedelta(seconds=30))
        await hub.advance(10 * 60)
        assert expiries(await hub.records()) == []
        assert hub.hub.engine.iterations == before + 1  # the early wake
        await hub.advance(30)
        assert [w for w, _ in expiries(await hub.records())] == ["w-back"]
        assert hub.hub.engine.iterations == before + 2
        assert bodies(await hub.records(), "window.status")[-1]["clock"] == {
            "synced": True,
            "source": "ntp",
        }
        assert hub.clock.now() == deadline


async def test_a_token_s_window_stored_on_first_use_expires_at_its_deadline(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        engine = hub.hub.engine
        await hub.quiet()
        before = engine.iterations
        token = hub.token("w-tok", max=2)  # valid for an hour from now, two uses
        end = hub.clock.now() + timedelta(hours=1)
        assert (await hub.unlock("front-door", token=token))[0] == 200
        await hub.quiet()
        assert engine.cache.get("w-tok") is not None  # stored on first use, still active
        assert engine.iterations == before + 1  # woken to schedule its deadline
        await hub.advance(3600)
        assert expiries(await hub.records()) == [("w-tok", end)]
