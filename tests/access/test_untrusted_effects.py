"""Untrusted time commits no expiry through the side doors either: a lock's late confirmation
(a PoD) and the commands that end windows (``task.complete``, ``windows.sync``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud_sync import protocol as p
from gateway.testing import FakeClock

from .harness import HubHarness, running_hub, settle
from .test_offline_e2e import bodies
from .test_provisioning import statuses
from .test_untrusted_time import lose_trust, regain_trust, stale_command

# The lock takes this long (fake seconds) to answer: time to jump the wall clock before its
# confirmation arrives. Below the coordinator's status (8 s) and unlock (15 s) timeouts.
LATENCY = 5.0
SLOW_LOCK = f"""
[[locks]]
id = "front-door"
driver = "sim"
[locks.options]
latency = {LATENCY}
"""
# Waiting for an unlock to reach the lock polls this often, at most this many times (2 s).
POLL_SECONDS = 0.002
POLLS = 1000


async def until(condition: Callable[[], bool]) -> None:
    """Wait (in real time, briefly) until ``condition`` holds."""
    for _ in range(POLLS):
        if condition():
            return
        await settle()
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError("the condition never held")


@contextlib.asynccontextmanager
async def slow_lock_hub(tmp_path: Path, **options: Any) -> AsyncIterator[HubHarness]:
    """A hub whose front door answers after LATENCY fake seconds."""
    clock = FakeClock()

    async def answer_start() -> None:  # the hub reads the lock's status as it starts
        # Other tasks sleep on this clock too (the coordinator's timeouts): wait for the lock's.
        await until(lambda: clock.sleeping_until(clock.monotonic() + LATENCY))
        clock.advance(LATENCY)

    answer = asyncio.create_task(answer_start())
    async with running_hub(tmp_path, clock=clock, locks=SLOW_LOCK, **options) as hub:
        await answer
        yield hub


def window(hub: HubHarness, window_id: str) -> Any:
    row = hub.hub.engine.cache.get(window_id)
    assert row is not None
    return row


# --- a late confirmation (PoD)


@pytest.mark.parametrize(
    ("max_uses", "state", "reported"),
    [(None, "active", ["applied"]), (1, "used", ["applied", "used"])],
)
async def test_a_late_confirmation_on_untrusted_time_commits_a_use_but_no_expiry(
    tmp_path: Path, max_uses: int | None, state: str, reported: list[str]
) -> None:
    async with slow_lock_hub(tmp_path, synced=False, policy="allow") as hub:
        real = hub.clock.now()
        ends = real + timedelta(minutes=5)
        body = hub.upsert("w-late", "51515151", ends_at=p.rfc3339(ends), max_uses=max_uses)
        await hub.send(stale_command(hub, "window.upsert", body))
        await hub.quiet()
        answers_at = hub.clock.monotonic() + LATENCY
        unlock = asyncio.create_task(hub.unlock("front-door", code="51515151"))
        # Granted, and the lock's radio is busy with it (not only the coordinator's timeout,
        # which sleeps on the same clock and may start first).
        await until(
            lambda: (
                "w-late" in hub.hub.engine.events.in_flight()
                and hub.clock.sleeping_until(answers_at)
            )
        )
        hub.clock.set_wall(real + timedelta(minutes=10))  # past its end, on untrusted time
        await hub.advance(LATENCY)  # the lock answers now
        assert (await unlock)[0] == 200
        row = window(hub, "w-late")
        assert (row.uses, row.state) == (1, state)
        records = await hub.records()
        assert [s for s, _ in statuses(records, "w-late")] == reported
        assert bodies(records, "pod.recorded")[0]["clock"] == {
            "synced": False,
            "source": "unsynced",
        }
        if max_uses is not None:
            return

        # NTP steps back to the true time: the window was never over; it ends on trusted time.
        hub.clock.set_wall(real + timedelta(minutes=1))
        await regain_trust(hub)
        assert window(hub, "w-late").state == "active"
        await hub.advance((ends - hub.clock.now()).total_seconds())
        assert window(hub, "w-late").state == "expired"
        expired = bodies(await hub.records(), "window.status")[-1]
        assert (expired["status"], expired["clock"]) == (
            "expired",
            {"synced": True, "source": "ntp"},
        )


# --- commands that end windows


@pytest.mark.parametrize(
    ("type_", "body", "detail"),
    [
        ("task.complete", {"task_id": "task-w-t"}, "task_complete"),
        (
            "windows.sync",
            {"set_version": 1, "page": 1, "pages": 1, "windows": []},
            "not_in_sync_set",
        ),
    ],
)
async def test_a_window_untrusted_time_shows_over_is_still_revoked(
    tmp_path: Path, type_: str, body: dict[str, Any], detail: str
) -> None:
    async with running_hub(tmp_path) as hub:
        real = hub.clock.now()
        upsert = hub.upsert("w-t", "73737373", ends_at=p.rfc3339(real + timedelta(minutes=5)))
        await hub.send(stale_command(hub, "window.upsert", upsert))
        await hub.quiet()
        await lose_trust(hub)
        hub.clock.set_wall(real + timedelta(minutes=9))  # ahead, past the window's end
        # Issued at the true time: valid, and too old to vouch for this wall clock.
        command = hub.command(type_, body, issued_at=real + timedelta(minutes=2))
        status, results = await hub.send(command)
        assert (status, results[0]["result"]) == (200, "applied")
        await hub.quiet()
        assert not hub.hub.clock.trusted()
        assert window(hub, "w-t").state == "revoked"
        assert statuses(await hub.records(), "w-t") == [("applied", None), ("revoked", detail)]

        # NTP steps back to the true time, inside the window: it stays revoked.
        hub.clock.set_wall(real + timedelta(minutes=1))
        await regain_trust(hub)
        assert window(hub, "w-t").state == "revoked"
        assert await hub.unlock("front-door", code="73737373") == (403, {"error": "denied"})
