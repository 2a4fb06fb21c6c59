"""`lockhub demo`: the hub working for real on embedded defaults, every step checked.

It creates the cloud's and the hub's keys with the real CLI, starts a hub (store, access
engine, two simulated locks, the local API on a loopback port) and plays a delivery morning
against it as the cloud and couriers would: a sealed window command, a replay and a forgery
refused, a courier's code opening the door once, a courier token for a window whose push
never arrived, a lock-enforced code on a keypad, a brute-force lockout, and finally the
outbox verified as the cloud will verify it and acknowledged. The MQTT link and the cloud
service join the demo as they land (README.md lists what works today).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from cloud_sync.protocol.errors import ProtocolError

from ..errors import GatewayError
from ..logs import configure_logging
from ..store import StoreError
from .scene import DEMO_CODE, KEYPAD_CODE, Demo, DemoFailedError
from .steps import STEPS

__all__ = ["DEMO_CODE", "KEYPAD_CODE", "STEPS", "Demo", "DemoFailedError", "main", "run"]


async def run(workdir: Path) -> int:
    """Run every step, printing progress; return 0 only if all checked out."""
    demo = Demo(workdir)
    started = time.monotonic()
    try:
        for number, (title, step) in enumerate(STEPS, start=1):
            print(f"[{number}/{len(STEPS)}] {title} ...", flush=True)
            try:
                detail = await step(demo)
            except (DemoFailedError, ProtocolError, GatewayError, StoreError, OSError) as exc:
                print(f"      FAILED: {exc}", flush=True)
                return 1
            print(f"      ok: {detail}", flush=True)
    finally:
        for undo in reversed(demo.cleanup):
            await undo()
    print(f"\nall {len(STEPS)} steps checked out in {time.monotonic() - started:.1f} s; files:")
    for path in demo.files:
        print(f"  {path}")
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``lockhub demo``."""
    parser = argparse.ArgumentParser(prog="lockhub demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=Path, help="empty work directory for the files (default: a new temp dir)"
    )
    args = parser.parse_args(argv)
    # Progress lines are the demo's output; the parts' own info logs would drown them.
    configure_logging("warning", "console")
    workdir: Path = args.dir or Path(tempfile.mkdtemp(prefix="lockhub-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        print(f"lockhub demo: error: {workdir} is not empty; pass an empty --dir", file=sys.stderr)
        return 2
    return asyncio.run(run(workdir.resolve()))
