"""`lockhub demo`: a delivery day on one machine, every part real, every step checked.

It starts an MQTT broker (amqtt, embedded; or a relay to ``--mqtt-url``), sets up the cloud
and a hub with the real ``lockhub`` CLI, runs the cloud service (MQTT worker, REST API,
SQLite) and the hub (store, access engine, three simulated locks, local API, MQTT link) in
this process as their daemons run them, then plays the day through the cloud's REST API and
the hub's local API: windows created in the cloud reach the hub, couriers open doors with
their codes and the PoDs come back, a guesser is locked out, the site goes offline while
deliveries go on and every PoD arrives exactly once afterwards, and a lock-enforced code is
typed on a lock's own keypad. The parts' logs go to files in the work directory.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .logfiles import PARTS, LogFiles
from .scene import Demo, DemoFailedError
from .steps import STEPS, Step

__all__ = ["STEPS", "Demo", "DemoFailedError", "Step", "main", "run"]


async def _run_steps(demo: Demo) -> bool:
    """Run every step with live progress; False at the first that does not check out."""
    for number, (title, step) in enumerate(STEPS, start=1):
        print(f"[{number:2}/{len(STEPS)}] {title} ...", flush=True)
        started = time.monotonic()
        try:
            detail = await step(demo)
        except DemoFailedError as exc:
            print(f"        FAILED: {exc}", flush=True)
            return False
        except Exception as exc:  # noqa: BLE001 - a bug in a part fails the demo, with a trace
            traceback.print_exc(file=demo.logs.stream("other"))
            print(f"        FAILED: {type(exc).__name__}: {exc}", flush=True)
            return False
        print(f"        ok ({time.monotonic() - started:.1f} s): {detail}", flush=True)
    return True


def _summary(demo: Demo, seconds: float) -> None:
    print(f"\nall {len(STEPS)} steps checked out in {seconds:.1f} s; files in {demo.workdir}:")
    rows = [*demo.files, *((f"{part} log", demo.logs.path(part)) for part in PARTS)]
    width = max(len(what) for what, _ in rows)
    for what, path in rows:
        print(f"  {what:<{width}}  {path}")


async def run(workdir: Path, mqtt_url: str | None = None, logs: LogFiles | None = None) -> int:
    """Play the day in ``workdir``, printing progress; return 0 only if every step checked out.

    ``logs``: log files already open (``main`` keeps them open until the event loop is gone,
    so the loop's own last words land there too); by default they are opened here.
    """
    own = logs is None
    logs = logs or LogFiles(workdir / "logs")
    if own:
        logs.open()
    demo = Demo(workdir, logs, mqtt_url=mqtt_url)
    started = time.monotonic()
    try:
        passed = await _run_steps(demo)
    finally:
        try:
            await demo.close()
        finally:
            if own:
                logs.close()
    if not passed:
        print(f"\nthe demo stopped there; the parts' logs are in {logs.directory}", flush=True)
        return 1
    _summary(demo, time.monotonic() - started)
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``lockhub demo``."""
    parser = argparse.ArgumentParser(prog="lockhub demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, help="empty work directory for the files (default: a new temp dir)"
    )
    parser.add_argument(
        "--mqtt-url",
        help="use this broker (mqtt://host[:port], e.g. a local mosquitto) instead of amqtt",
    )
    args = parser.parse_args(argv)
    workdir: Path = args.dir or Path(tempfile.mkdtemp(prefix="lockhub-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        print(f"lockhub demo: error: {workdir} is not empty; pass an empty --dir", file=sys.stderr)
        return 2
    workdir = workdir.resolve()
    print(f"lockhub demo: a delivery day in {workdir}", flush=True)
    logs = LogFiles(workdir / "logs")
    logs.open()
    try:
        return asyncio.run(run(workdir, args.mqtt_url, logs))
    finally:
        logs.close()
