"""Power loss: everything not yet synced to disk is gone, and nothing acknowledged is missing.

The writer runs with the powercut.c shim preloaded; at a random moment it is SIGKILLed and
its directory is rebuilt from what it had synced (tests/reliability/powercut.py). Then:

- the store alone: every seq the child reported committed is in the rebuilt file, which
  passes integrity_check with a gap-free, signed chain (many cuts, seconds each);
- a control: the same cut loses commits made with ``synchronous=NORMAL`` (synced only at
  checkpoints) and none made with ``FULL``, so the simulation can tell the difference;
- the whole hub: a real ``lockhub gateway run`` with couriers unlocking and the cloud
  connected; after each cut every PoD the hub answered 200 for is in its rebuilt database,
  and at the end the cloud holds each of them once (``Site.verify``).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tests.faults.deployment import Site
from tests.faults.figures import Figures, record
from tests.faults.processes import Unlocker
from tests.faults.stores import integrity
from tests.store import test_crash as crash

from .powercut import PowerCut, hub_pods

pytestmark = pytest.mark.slow

# Cuts of the store alone: each costs a child start-up (about 0.5 s).
STORE_CUTS = int(os.environ.get("LOCKHUB_POWERCUT_ROUNDS", "8"))
# Cuts of the whole hub: each costs a hub start-up (about 2 s) and some unlocking.
HUB_CUTS = int(os.environ.get("LOCKHUB_POWERCUT_HUB_ROUNDS", "3"))
# After the child's first commit the cut lands somewhere in this span: dozens of commits.
MAX_CUT_DELAY_S = 0.3
# Couriers unlock this long (drawn uniformly) before each cut of the hub.
HUB_LOAD_S = (0.5, 1.5)
# Child start-up on a loaded box; far past this the child is broken, not slow.
FIRST_COMMIT_TIMEOUT_S = 15.0

# Commits CONTROL_ROWS rows one by one, says "idle" and waits to be killed: the cut then
# lands at a known point, after every commit returned and before any checkpoint (300 small
# commits stay under the 1000-page WAL autocheckpoint).
CONTROL_ROWS = 300
CONTROL_CHILD = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("PRAGMA synchronous = " + sys.argv[2])
conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, pad BLOB)")
for n in range(1, int(sys.argv[3]) + 1):
    conn.execute("INSERT INTO t VALUES (?, zeroblob(200))", (n,))
    print("committed", n, flush=True)
print("idle", flush=True)
time.sleep(3600)
"""


def cut_child(
    argv: list[str], cut: PowerCut, rng: random.Random, until: bytes = b"\n"
) -> list[int]:
    """Run a child that prints ``committed <n>``, SIGKILL it once ``until`` appeared (plus a
    random delay), rebuild its directory from what it synced; return the numbers reported."""
    child = subprocess.Popen(
        argv,
        env={**os.environ, **cut.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    assert child.stdout is not None
    output = b""
    deadline = time.monotonic() + FIRST_COMMIT_TIMEOUT_S
    while until not in output and time.monotonic() < deadline:
        output += crash.read_available(child.stdout.fileno(), 0.05)
    time.sleep(rng.uniform(0.0, MAX_CUT_DELAY_S) if until == b"\n" else 0.0)
    child.send_signal(signal.SIGKILL)
    rest, errors = child.communicate()
    assert child.returncode == -signal.SIGKILL, errors.decode()
    cut.cut()
    lines = (output + rest).decode().splitlines()
    return [int(line.split()[1]) for line in lines if line.startswith("committed ")]


@pytest.mark.timeout(30 + 5 * STORE_CUTS)
def test_every_committed_record_survives_a_power_cut(
    shim: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "hub.key"
    key_file.write_bytes(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
    watch = tmp_path / "disk"
    watch.mkdir()
    db = watch / "hub.db"
    cut = PowerCut(shim, watch, tmp_path / "cut")
    rng, head, reported_total = random.Random(), 0, 0
    verified: dict[int, str] = {}
    started = time.monotonic()
    for _ in range(STORE_CUTS):
        cut.arm()
        argv = [sys.executable, str(crash.CHILD), str(db), str(key_file), str(rng.getrandbits(30))]
        reported = cut_child(argv, cut, rng)
        new_head = crash.check_file(db, key.public_key(), verified)  # integrity, chain, sigs
        assert new_head >= head
        assert all(seq <= new_head for seq in reported), (reported[-1:], new_head)
        head, reported_total = new_head, reported_total + len(reported)
    assert head > STORE_CUTS  # the rounds did real work
    figures = Figures(
        loop="power cuts (store)",
        rounds=STORE_CUTS,
        records=head,
        pods_ok=0,
        pods_in_cloud=0,
        lost=0,  # asserted above: no reported commit is past the rebuilt head
        duplicated=0,
        extra=0,
        seconds=time.monotonic() - started,
        notes=f"{reported_total} commit reports checked; no cloud",
    )
    record(request.node.user_properties, figures)


@pytest.mark.parametrize(("synchronous", "loses"), [("NORMAL", True), ("FULL", False)])
def test_the_simulation_loses_what_was_not_synced(
    shim: Path, tmp_path: Path, synchronous: str, loses: bool
) -> None:
    watch = tmp_path / "disk"
    watch.mkdir()
    cut = PowerCut(shim, watch, tmp_path / "cut")
    cut.arm()
    argv = [sys.executable, "-c", CONTROL_CHILD, str(watch / "t.db"), synchronous]
    reported = cut_child([*argv, str(CONTROL_ROWS)], cut, random.Random(0), until=b"idle\n")
    assert reported == list(range(1, CONTROL_ROWS + 1))
    rows = 0
    if (watch / "t.db").exists():
        assert integrity(watch / "t.db") == "ok"
        conn = sqlite3.connect(watch / "t.db")
        try:
            rows = conn.execute("SELECT count(*) FROM t").fetchone()[0]
        except sqlite3.OperationalError:  # the table itself was never synced
            rows = 0
        finally:
            conn.close()
    print(f"[power] control synchronous={synchronous}: committed={CONTROL_ROWS} kept={rows}")
    assert rows == (0 if loses else CONTROL_ROWS)


@pytest.mark.mqtt
@pytest.mark.timeout(120 + 30 * HUB_CUTS)
async def test_power_cuts_keep_every_pod_the_hub_answered_200_for(
    site: Site, shim: Path, tmp_path: Path
) -> None:
    rng = random.Random()
    cut = PowerCut(shim, site.hub_db.parent, tmp_path / "cut")
    await site.start_cloud()
    cut.arm()
    await site.start_hub(cut.env())
    unlocker = Unlocker(site.unlock_url, await site.open_window("task-power"))
    for _ in range(HUB_CUTS):
        stop = asyncio.Event()
        courier = asyncio.create_task(unlocker.run(stop))
        await asyncio.sleep(rng.uniform(*HUB_LOAD_S))
        site.hub.kill()  # the power goes: the process and every unsynced write with it
        stop.set()
        await courier
        restored = cut.cut()
        assert "hub.db" in restored, restored
        missing = set(unlocker.pods) - hub_pods(site.hub_db)
        assert not missing, f"{len(missing)} PoDs answered 200 were lost: {sorted(missing)[:3]}"
        cut.arm()
        await site.start_hub(cut.env())
    figures = await site.verify("power cuts (hub)", HUB_CUTS, unlocker, "LD_PRELOAD shim")
    assert figures.pods_ok > HUB_CUTS
