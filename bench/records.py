"""Signed, chained outbox appends against raw sqlite3 inserts of rows of the same size."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.protocol.envelope import Signer
from gateway.store import Store, StoredRecord
from gateway.testing import lock_event_record

from .harness import Context, Row, rate, scenario

HUB_ID = "hub-bench"
BATCH_SIZES = (1, 100)
# Padding that brings a lock event to a typical record size (vendor ids, details).
PAD = "x" * 120
RAW_TABLE = """
CREATE TABLE records (seq INTEGER PRIMARY KEY, record_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL, payload BLOB NOT NULL, envelope TEXT NOT NULL,
    payload_hash TEXT NOT NULL, created_at TEXT NOT NULL, acked_at TEXT)
"""


def wall_clock() -> datetime:
    return datetime.now(UTC)


async def _store_rate(path: Path, batch: int, seconds: float) -> tuple[float, StoredRecord]:
    signer = Signer(HUB_ID, Ed25519PrivateKey.generate())
    items = [lock_event_record(0, PAD)] * batch
    async with await Store.open(path, signer=signer, hub_id=HUB_ID, now=wall_clock) as store:
        loop = asyncio.get_running_loop()
        done, start = 0, loop.time()
        while loop.time() - start < seconds:
            done += len(await store.append_records(items))
        elapsed = loop.time() - start
        (sample,) = await store.unacked(1)
    return done / elapsed, sample


def _raw_rate(path: Path, batch: int, seconds: float, sample: StoredRecord) -> float:
    with closing(sqlite3.connect(path, isolation_level="IMMEDIATE")) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(RAW_TABLE)
        # Same sizes as the store's rows; only seq and record_id change from row to row.
        payload = os.urandom(len(sample.payload))
        envelope = "e" * len(str(sample.envelope))
        fixed = (sample.type, payload, envelope, sample.payload_hash, "2026-01-01T00:00:00.000Z")
        seq = 0

        def insert_batch() -> int:
            nonlocal seq
            rows = [(seq + n, f"{seq + n:026d}", *fixed, None) for n in range(1, batch + 1)]
            seq += batch
            conn.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.commit()
            return batch

        return rate(insert_batch, seconds)


@scenario("append")
def append(context: Context) -> Iterator[Row]:
    """Store.append_records (sign, chain, one executemany per batch) vs raw sqlite3."""
    for batch in BATCH_SIZES:
        ours, sample = asyncio.run(
            _store_rate(context.workdir / f"store-{batch}.db", batch, context.seconds)
        )
        raw = _raw_rate(context.workdir / f"raw-{batch}.db", batch, context.seconds, sample)
        yield Row(f"append_records, batch {batch} vs sqlite3 executemany", ours, raw, "records/s")
