"""The crash campaign: round after round of SIGKILLs and broker restarts under load.

Two couriers unlock without pause through the hub's local API while each round, at a random
moment, does one of: SIGKILL the hub, cut the hub's power (SIGKILL, then its files rebuilt
from what it had synced: tests/reliability/powercut.py), SIGKILL the cloud, SIGKILL both,
restart the broker (SIGTERM, sessions saved) or kill it (SIGKILL, unsaved sessions and
queued messages gone); every kind comes at least once. After every hub SIGKILL a copy of its
SQLite file (with the WAL) passes ``integrity_check``; after every power cut the rebuilt file
does, and holds every PoD the hub had answered 200 for.
At the end ``Site.verify`` checks the cloud holds every record once, gap-free and chained,
every PoD the hub answered 200 for exactly once, and both stores pass ``integrity_check``.

``LOCKHUB_SOAK_ROUNDS`` sets the rounds (20 in ``make test``, 200 in ``make soak``);
``LOCKHUB_SOAK_SEED`` replays a schedule (the seed is printed).
"""

from __future__ import annotations

import asyncio
import enum
import os
import random
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.deployment import Site
from tests.faults.processes import Unlocker
from tests.faults.stores import integrity

from .powercut import PowerCut, hub_pods

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

# 20 rounds keep `make test` about a minute longer; `make soak` asks for 200 or more.
ROUNDS = int(os.environ.get("LOCKHUB_SOAK_ROUNDS", "20"))
SEED = int(os.environ.get("LOCKHUB_SOAK_SEED", str(random.SystemRandom().randrange(1 << 32))))
# Couriers unlocking at once: two keep the hub's store and the link busy at every moment.
COURIERS = 2
# A round waits this long (uniformly drawn) before its fault: long enough for records to be
# in flight, short enough that most faults land mid-batch.
ROUND_GAP_S = (0.1, 0.8)
# How long a killed part stays down: from an immediate restart to a short outage.
DOWNTIME_S = (0.0, 0.4)
# Per round: a hub start (up to START_SECONDS on a loaded box) plus the gap, generously.
ROUND_BUDGET_S = 35.0
# Setup (keys and schema through the CLI) and the final settle (one stall resend at most).
FIXED_BUDGET_S = 240.0


class Fault(enum.Enum):
    """What one round does to the deployment."""

    HUB_KILL = "hub SIGKILL"
    POWER_CUT = "hub power cut"
    CLOUD_KILL = "cloud SIGKILL"
    BOTH_KILL = "hub+cloud SIGKILL"
    BROKER_RESTART = "broker restart"
    BROKER_KILL = "broker SIGKILL"


# Hub kills and power cuts weigh most: they are what PoD durability rests on.
WEIGHTS = {
    Fault.HUB_KILL: 3,
    Fault.POWER_CUT: 2,
    Fault.CLOUD_KILL: 3,
    Fault.BOTH_KILL: 1,
    Fault.BROKER_RESTART: 1,
    Fault.BROKER_KILL: 1,
}


def check_killed_hub_store(db: Path, scratch: Path) -> None:
    """``integrity_check`` on a copy of the killed hub's database with its WAL (the copy keeps
    the check from checkpointing into the file the next hub start opens)."""
    scratch.mkdir(exist_ok=True)
    for suffix in ("", "-wal"):
        source = Path(f"{db}{suffix}")
        if source.exists():
            shutil.copyfile(source, scratch / f"hub.db{suffix}")
    if (scratch / "hub.db").exists():
        assert integrity(scratch / "hub.db") == "ok"
    for leftover in scratch.iterdir():
        leftover.unlink()


def schedule(rng: random.Random, rounds: int) -> list[Fault]:
    """``rounds`` faults drawn by weight, each kind at least once when rounds allow."""
    drawn = list(Fault)[:rounds]
    drawn += rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()), k=rounds - len(drawn))
    rng.shuffle(drawn)
    return drawn


def power_cut(site: Site, cut: PowerCut, pods: list[str]) -> None:
    """SIGKILL the hub, rebuild its files from what it synced, check every PoD answered 200."""
    site.hub.kill()
    assert "hub.db" in cut.cut()
    missing = set(pods) - hub_pods(site.hub_db)
    assert not missing, f"{len(missing)} PoDs answered 200 lost in a power cut"


async def inflict(
    site: Site, fault: Fault, rng: random.Random, cut: PowerCut, unlocker: Unlocker
) -> None:
    """Do ``fault`` to the running deployment and bring the parts back."""
    if fault in (Fault.HUB_KILL, Fault.BOTH_KILL):
        site.hub.kill()
        check_killed_hub_store(site.hub_db, cut.work / "scratch")
    if fault is Fault.POWER_CUT:
        power_cut(site, cut, list(unlocker.pods))
    if fault in (Fault.CLOUD_KILL, Fault.BOTH_KILL):
        site.cloud.kill()
    if fault is Fault.BROKER_RESTART:
        site.broker.restart()
    if fault is Fault.BROKER_KILL:
        site.broker.kill()
    await asyncio.sleep(rng.uniform(*DOWNTIME_S))
    if fault is Fault.BROKER_KILL:
        site.broker.start()
    if not site.cloud.running:
        # Not waited for: the next round may kill it again while it starts up.
        await site.start_cloud(wait=False)
    if not site.hub.running:
        cut.arm()  # the files as they are now count as durable (the OS did not go down)
        await site.start_hub(cut.env())


@pytest.mark.timeout(FIXED_BUDGET_S + ROUND_BUDGET_S * ROUNDS)
async def test_crash_campaign_loses_and_duplicates_nothing(
    site: Site, shim: Path, tmp_path: Path
) -> None:
    print(f"[campaign] rounds={ROUNDS} seed={SEED} (LOCKHUB_SOAK_SEED replays the schedule)")
    rng = random.Random(SEED)
    cut = PowerCut(shim, site.hub_db.parent, tmp_path / "cut")
    await site.start_cloud()
    cut.arm()
    await site.start_hub(cut.env())
    unlocker = Unlocker(site.unlock_url, await site.open_window("task-campaign"))
    stop = asyncio.Event()
    couriers = [asyncio.create_task(unlocker.run(stop)) for _ in range(COURIERS)]
    done: Counter[Fault] = Counter()
    started = time.monotonic()
    try:
        for fault in schedule(rng, ROUNDS):
            await asyncio.sleep(rng.uniform(*ROUND_GAP_S))
            await inflict(site, fault, rng, cut, unlocker)
            done[fault] += 1
            site.hub.check_alive()
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*couriers)
    faults = time.monotonic() - started
    await site.wait_ready(site.cloud)
    notes = ", ".join(f"{fault.value} {done[fault]}" for fault in Fault if done[fault])
    figures = await site.verify(
        "crash campaign", ROUNDS, unlocker, f"seed {SEED}; {notes}; faults {faults:.0f} s"
    )
    assert sum(done.values()) == ROUNDS
    assert figures.pods_ok > ROUNDS, "the couriers barely got through: no load"
