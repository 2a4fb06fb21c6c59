"""The outbox: signed, hash-chained records with gap-free seq, kept until the cloud acks them."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime

from cloud_sync.protocol.chain import GENESIS_HASH, payload_hash
from cloud_sync.protocol.envelope import Signer
from cloud_sync.protocol.errors import MalformedError
from cloud_sync.protocol.ids import new_ulid
from cloud_sync.protocol.records import build_record

from .database import Database, Params
from .errors import InvalidRecordError, StoreError
from .migrations import CHAIN_HEAD_KEY
from .rows import ChainHead, NewRecord, StoredRecord, from_db_time, optional_time, to_db_time

# One statement and its parameter rows, run with executemany inside a transaction.
Batch = tuple[str, Sequence[Params]]

_INSERT = (
    "INSERT INTO records (seq, record_id, type, payload, envelope, payload_hash, created_at,"
    " acked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_UNACKED = (
    "SELECT seq, record_id, type, payload, envelope, payload_hash, created_at, acked_at"
    " FROM records WHERE acked_at IS NULL ORDER BY seq LIMIT ?"
)


async def read_head(db: Database) -> ChainHead:
    """Read the chain head that the database keeps beside the records."""
    rows = await db.fetch("SELECT value FROM kv WHERE key = ?", (CHAIN_HEAD_KEY,))
    if not rows:
        return ChainHead(0, GENESIS_HASH)
    head = json.loads(rows[0][0])
    return ChainHead(int(head["seq"]), str(head["hash"]))


def _record_from_row(row: sqlite3.Row) -> StoredRecord:
    seq, record_id, type_, payload, envelope, hash_, created_at, acked_at = row
    return StoredRecord(
        seq=seq,
        record_id=record_id,
        type=type_,
        payload=bytes(payload),
        envelope=json.loads(envelope),
        payload_hash=hash_,
        created_at=from_db_time(created_at),
        acked_at=optional_time(acked_at),
    )


def _row_from_record(record: StoredRecord) -> tuple[object, ...]:
    envelope = json.dumps(record.envelope, separators=(",", ":"), sort_keys=True)
    return (
        record.seq,
        record.record_id,
        record.type,
        record.payload,
        envelope,
        record.payload_hash,
        to_db_time(record.created_at),
        None,
    )


class Outbox:
    """Appends records to the chain and tracks which ones the cloud has acknowledged."""

    def __init__(
        self, db: Database, signer: Signer, hub_id: str, now: Callable[[], datetime]
    ) -> None:
        self._db = db
        self._signer = signer
        self._hub_id = hub_id
        self._now = now
        self._append_lock = asyncio.Lock()
        # None: unknown until read from the database (at start, and after a failed commit,
        # which may or may not have reached the disk).
        self._head: ChainHead | None = None

    async def head(self) -> ChainHead:
        """Return the last committed record's seq and payload hash."""
        async with self._append_lock:
            return await self._current_head()

    async def _current_head(self) -> ChainHead:
        if self._head is None:
            self._head = await read_head(self._db)
        return self._head

    def _build(self, head: ChainHead, items: Sequence[NewRecord]) -> list[StoredRecord]:
        moment = self._now()
        record_id_ms = int(moment.timestamp() * 1000)
        seq, prev_hash, records = head.seq, head.hash, []
        for item in items:
            seq += 1
            record_id = new_ulid(record_id_ms)
            body = {**item.body, "prev_hash": prev_hash}
            try:
                payload = build_record(
                    type=item.type,
                    hub_id=self._hub_id,
                    seq=seq,
                    issued_at=moment,
                    body=body,
                    record_id=record_id,
                )
            except MalformedError as exc:
                raise InvalidRecordError(f"record {seq} ({item.type}): {exc}") from exc
            prev_hash = payload_hash(payload)
            envelope = self._signer.sign(payload)
            records.append(
                StoredRecord(seq, record_id, item.type, payload, envelope, prev_hash, moment, None)
            )
        return records

    async def append(
        self, items: Sequence[NewRecord], also: Sequence[Batch] = ()
    ) -> list[StoredRecord]:
        """Sign, chain and durably store ``items`` and the ``also`` writes in one transaction."""
        if not items and not also:
            return []
        # Shielded so that a cancelled caller cannot separate the commit from the head update.
        return await asyncio.shield(self._append(items, also))

    async def _append(
        self, items: Sequence[NewRecord], also: Sequence[Batch]
    ) -> list[StoredRecord]:
        async with self._append_lock:
            head = await self._current_head()
            records = self._build(head, items)
            batches = [*also, (_INSERT, [_row_from_record(r) for r in records])]
            try:
                await self._db.write_batches(batches)
            except StoreError:
                self._head = None
                raise
            if records:
                self._head = ChainHead(records[-1].seq, records[-1].payload_hash)
            return records

    async def unacked(self, limit: int) -> list[StoredRecord]:
        """Return up to ``limit`` unacknowledged records, oldest first."""
        rows = await self._db.fetch(_SELECT_UNACKED, (limit,))
        return [_record_from_row(row) for row in rows]

    async def depth(self) -> int:
        """Return how many records wait for an ack."""
        rows = await self._db.fetch("SELECT count(*) FROM records WHERE acked_at IS NULL")
        return int(rows[0][0])

    async def ack(self, ranges: Sequence[tuple[int, int]]) -> int:
        """Mark records in the inclusive seq ranges acked; return how many were newly acked."""
        if not ranges:
            return 0
        moment = to_db_time(self._now())
        # Only existing rows change, so a range past the head cannot pre-ack future records.
        return await self._db.write_many(
            "UPDATE records SET acked_at = ? WHERE seq BETWEEN ? AND ? AND acked_at IS NULL",
            [(moment, first, last) for first, last in ranges],
        )

    async def purge_acked(self, before: datetime) -> int:
        """Delete records acked before ``before``; unacked records are never deleted."""
        return await self._db.write(
            "DELETE FROM records WHERE acked_at IS NOT NULL AND acked_at < ?",
            (to_db_time(before),),
        )
