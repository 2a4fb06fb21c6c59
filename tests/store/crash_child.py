"""Child process for the crash test: append records forever, report each committed seq.

Usage: python crash_child.py DB_PATH KEY_FILE SEED. Prints ``committed <last seq>`` after
every commit returns; the parent SIGKILLs it at a random moment.
"""

from __future__ import annotations

import asyncio
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.protocol.envelope import Signer
from gateway.store import Store
from gateway.testing import lock_event_record

HUB_ID = "hub-crash"
# Batches of one to a few dozen records: single commits and multi-page transactions both
# get killed mid-way.
MAX_BATCH = 40


def wall_clock() -> datetime:
    return datetime.now(UTC)


async def append_forever(path: Path, key: bytes, seed: int) -> None:
    rng = random.Random(seed)
    signer = Signer(HUB_ID, Ed25519PrivateKey.from_private_bytes(key))
    async with await Store.open(path, signer=signer, hub_id=HUB_ID, now=wall_clock) as store:
        while True:
            size = rng.randint(1, MAX_BATCH)
            batch = [lock_event_record(0, "x" * rng.randint(0, 500))] * size
            records = await store.append_records(batch)
            sys.stdout.write(f"committed {records[-1].seq}\n")
            sys.stdout.flush()


def main() -> None:
    # Logs go to stderr so that stdout carries only the commit reports.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    path, key_file, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    asyncio.run(append_forever(path, key_file.read_bytes(), seed))


if __name__ == "__main__":
    main()
