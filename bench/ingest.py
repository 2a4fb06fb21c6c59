"""Cloud ingest with 1 and 2 workers on SQLite and PostgreSQL, vs raw executemany inserts.

A backlog of real record envelopes is made once by HUBS hub ``Store``s (signed, chained lock
events), cut into the link's batches of 100, and published by a raw paho client to each hub's
``up/records``; worker processes (a shared subscription) verify, store, chain and ack them.
``LOCKHUB_BENCH_INGEST`` sets the record count (default INGEST_RECORDS; QUICK_RECORDS with
``--quick``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloud_sync.protocol.envelope import Signer, decode_batch, encode_batch
from cloud_sync.protocol.keys import public_key_b64
from cloud_sync.protocol.topics import records_topic
from cloud_sync.store import CloudStore
from gateway.store import Store
from gateway.sync.settings import DEFAULT_BATCH_SIZE
from gateway.testing import lock_event_record
from tests.infra.services import MosquittoBroker, create_database, drop_database

from . import rawmqtt
from .deployment import PREFIX, broker, chains_complete, cloud_config, register, until, workers
from .harness import Context, Row, scenario
from .records import wall_clock
from .sync import PAD

INGEST_RECORDS = 10_000
QUICK_RECORDS = 400
# Two hubs: one hub's chain is locked per batch, so two workers need two hubs to overlap.
HUBS = 2
APPEND_BATCH = 1_000
Backlog = dict[str, tuple[str, list[bytes]]]  # hub id -> (signing key, batches)


async def make_backlog(workdir: Path, count: int) -> Backlog:
    """``count`` signed records from HUBS hub stores, as the link's batches."""
    backlog: Backlog = {}
    per_hub = count // HUBS
    for n in range(HUBS):
        hub_id, key = f"hub-ingest-{n}", Ed25519PrivateKey.generate()
        signer = Signer(hub_id, key)
        path = workdir / f"{hub_id}.db"
        async with await Store.open(path, signer=signer, hub_id=hub_id, now=wall_clock) as store:
            for first in range(0, per_hub, APPEND_BATCH):
                items = [lock_event_record(i, PAD) for i in range(first, first + APPEND_BATCH)]
                await store.append_records(items[: per_hub - first])
            stored = await store.unacked(per_hub)
        envelopes = [r.envelope for r in stored]
        batches = [
            encode_batch(envelopes[i : i + DEFAULT_BATCH_SIZE])
            for i in range(0, len(envelopes), DEFAULT_BATCH_SIZE)
        ]
        backlog[hub_id] = (public_key_b64(key.public_key()), batches)
    return backlog


def publish_all(port: int, backlog: Backlog) -> None:
    """Publish every batch (pipelined QoS 1), hubs interleaved as they would arrive."""
    with rawmqtt.client(port, "bench-ingest-pub") as pub:
        rounds = max(len(batches) for _, batches in backlog.values())
        sent = [
            pub.publish(records_topic(PREFIX, hub_id), batches[i], qos=1)
            for i in range(rounds)
            for hub_id, (_, batches) in backlog.items()
            if i < len(batches)
        ]
        for info in sent:  # every PUBACK before disconnecting
            info.wait_for_publish(rawmqtt.RUN_SECONDS)


def run_ingest(workdir: Path, url: str, count: int, backlog: Backlog) -> float:
    """Records/s through ``count`` worker processes until every hub's chain is complete."""
    # A broker per run: a finished run's worker sessions would stay in the shared group.
    with broker(workdir) as mosquitto:
        return asyncio.run(_ingest(workdir, mosquitto, url, count, backlog))


def head_of(batches: list[bytes]) -> int:
    """The last seq of a hub's batches: as many records as they hold (seqs start at 1)."""
    return sum(len(decode_batch(batch)) for batch in batches)


async def _ingest(
    workdir: Path, mosquitto: MosquittoBroker, url: str, count: int, backlog: Backlog
) -> float:
    tag = workdir.name
    configs = [await cloud_config(workdir, mosquitto, url, f"{tag}-{n}") for n in range(count)]
    for hub_id, (key, _) in backlog.items():
        sealing = public_key_b64(X25519PrivateKey.generate().public_key())
        await register(url, hub_id, key, sealing)
    heads = {hub_id: head_of(batches) for hub_id, (_, batches) in backlog.items()}
    async with await CloudStore.open(url) as reader:
        with workers(configs):
            start = time.perf_counter()
            publisher = asyncio.create_task(asyncio.to_thread(publish_all, mosquitto.port, backlog))
            end = await until(lambda: chains_complete(reader, heads), "the cloud to chain all")
            await publisher
    return sum(heads.values()) / (end - start)


def raw_sqlite(source: Path, target: Path) -> float:
    """sqlite3 executemany of the ingested rows into a copy of the records table; rows/s."""
    with closing(sqlite3.connect(source)) as conn:
        (schema,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'records'").fetchone()
        rows = conn.execute("SELECT * FROM records ORDER BY hub_id, seq").fetchall()
    with closing(sqlite3.connect(target, isolation_level="IMMEDIATE")) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(schema)
        marks = ", ".join("?" * len(rows[0]))
        start = time.perf_counter()
        insert = f"INSERT INTO records VALUES ({marks})"  # noqa: S608 - our own marks
        for i in range(0, len(rows), DEFAULT_BATCH_SIZE):
            conn.executemany(insert, rows[i : i + DEFAULT_BATCH_SIZE])
            conn.commit()
        return len(rows) / (time.perf_counter() - start)


async def raw_postgres(dsn: str) -> float:
    """asyncpg executemany of the ingested rows into ``records_raw (LIKE records)``; rows/s."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE records_raw (LIKE records INCLUDING ALL)")
        rows = [tuple(r) for r in await conn.fetch("SELECT * FROM records ORDER BY hub_id, seq")]
        marks = ", ".join(f"${n}" for n in range(1, len(rows[0]) + 1))
        start = time.perf_counter()
        for i in range(0, len(rows), DEFAULT_BATCH_SIZE):
            async with conn.transaction():
                await conn.executemany(
                    f"INSERT INTO records_raw VALUES ({marks})",  # noqa: S608 - our own marks
                    rows[i : i + DEFAULT_BATCH_SIZE],
                )
        return len(rows) / (time.perf_counter() - start)
    finally:
        await conn.close()


def sqlite_runs(workdir: Path, backlog: Backlog, records: int) -> Iterator[Row]:
    """1 and 2 workers on a fresh SQLite file each, then the raw inserts of its rows."""
    for count in (1, 2):
        run = workdir / f"sqlite-{count}"
        db = run / "cloud.db"
        ours = run_ingest(run, f"sqlite+aiosqlite:///{db}", count, backlog)
        raw = raw_sqlite(db, run / "raw.db")
        label = f"cloud ingest, SQLite, {count} worker(s), {records:,} records"
        yield Row(f"{label} vs sqlite3 executemany (batches of 100)", ours, raw, "records/s")


def postgres_runs(workdir: Path, backlog: Backlog, records: int) -> Iterator[Row]:
    """1 and 2 workers on a fresh PostgreSQL database each, then the raw inserts of its rows."""
    for count in (1, 2):
        database = asyncio.run(create_database())
        try:
            url = database.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
            ours = run_ingest(workdir / f"pg-{count}", url, count, backlog)
            raw = asyncio.run(raw_postgres(database.dsn))
        finally:
            asyncio.run(drop_database(database))
        label = f"cloud ingest, PostgreSQL, {count} worker(s), {records:,} records"
        yield Row(f"{label} vs asyncpg executemany (batches of 100)", ours, raw, "records/s")


@scenario("ingest")
def ingest(context: Context) -> Iterator[Row]:
    """Cloud workers ingesting a prepared backlog vs raw inserts of the same rows."""
    workdir = context.workdir / "ingest"
    workdir.mkdir(parents=True)
    records = context.size("INGEST", INGEST_RECORDS, QUICK_RECORDS)
    backlog = asyncio.run(make_backlog(workdir, records))
    yield from sqlite_runs(workdir, backlog, records)
    yield from postgres_runs(workdir, backlog, records)
