"""Ingest a batch of one hub's record envelopes: verify, store once, chain, apply."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.protocol import jsoncodec
from cloud_sync.protocol.chain import GENESIS_HASH, payload_hash
from cloud_sync.protocol.envelope import verify
from cloud_sync.protocol.errors import ProtocolError
from cloud_sync.protocol.messages import ack_ranges
from cloud_sync.protocol.policy import accept_record
from cloud_sync.protocol.records import HubAlert, Record

from .chain import (
    advance,
    break_chain,
    epoch_holds_records,
    hold_back,
    lock_chain,
    save_chain,
)
from .engine import insert_for
from .rows import ChainState, IngestResult, Rejected
from .schema import records

log = structlog.get_logger(__name__)

QUARANTINE_KIND = "store.quarantined"


@dataclass(frozen=True, slots=True)
class Incoming:
    """A verified record of the batch, ready to store."""

    record: Record
    payload: bytes
    envelope: str


def verify_batch(
    hub_id: str, key: Ed25519PublicKey, envelopes: Sequence[object]
) -> tuple[list[Incoming], list[Rejected]]:
    """Split a batch into verified records (one per record id) and rejected envelopes."""
    keys = {hub_id: key}
    valid: dict[str, Incoming] = {}
    rejected: list[Rejected] = []
    for index, envelope in enumerate(envelopes):
        try:
            verified = verify(envelope, keys)
            record = accept_record(verified, hub_id=hub_id)
        except ProtocolError as error:
            rejected.append(Rejected(index, f"{type(error).__name__}: {error}"))
            continue
        text = jsoncodec.dumps(envelope).decode("utf-8")
        valid.setdefault(record.id, Incoming(record, verified.payload, text))
    return sorted(valid.values(), key=lambda item: item.record.seq), rejected


def starts_epoch(item: Incoming) -> bool:
    """Whether a record opens a new chain after the hub quarantined its store."""
    record = item.record
    return (
        record.seq == 1
        and record.body.prev_hash == GENESIS_HASH
        and isinstance(record, HubAlert)
        and record.body.kind == QUARANTINE_KIND
    )


async def store_batch(
    conn: AsyncConnection, dialect: str, hub_id: str, items: list[Incoming], now: datetime
) -> IngestResult:
    """Store, chain and apply ``items`` inside the caller's transaction."""
    chain = await lock_chain(conn, hub_id)
    result = IngestResult(hub_id)
    known = await _known(conn, hub_id, (item.record.id for item in items))
    fresh = [item for item in items if item.record.id not in known]
    if any(starts_epoch(item) for item in fresh) and await epoch_holds_records(conn, chain):
        chain = ChainState(hub_id, chain.epoch + 1, 1, GENESIS_HASH, None)
        result.new_epoch = True
        log.warning("chain.new_epoch", hub_id=hub_id, epoch=chain.epoch)
    was_broken = chain.broken_seq is not None
    # A duplicate of an older epoch names a seq the hub now uses for another record.
    acked = {seq for epoch, seq in known.values() if epoch == chain.epoch}
    result.duplicates = len(items) - len(fresh)
    inserted = await _insert(conn, dialect, chain.epoch, fresh, now)
    for item in fresh:
        seq = item.record.seq
        if item.record.id in inserted:
            acked.add(seq)
        else:
            result.conflicts.append(seq)
            if seq < chain.next_seq:
                problem = "a different record for a seq already chained"
                chain = await break_chain(conn, dialect, chain, seq=seq, problem=problem, now=now)
    chain, result.chained = await advance(conn, dialect, chain, now)
    # Stored and acked, but not chained: say so for each record (the break's own alert
    # names only where it broke), all of them the moment it breaks.
    result.held = await hold_back(conn, dialect, chain, inserted if was_broken else None, now)
    await save_chain(conn, chain)
    result.stored, result.epoch = len(inserted), chain.epoch
    result.acked, result.broken_at = ack_ranges(acked), chain.broken_seq
    return result


async def _known(
    conn: AsyncConnection, hub_id: str, record_ids: Iterable[str]
) -> dict[str, tuple[int, int]]:
    ids = list(record_ids)
    if not ids:
        return {}
    query = sa.select(records.c.record_id, records.c.epoch, records.c.seq).where(
        records.c.hub_id == hub_id, records.c.record_id.in_(ids)
    )
    return {row.record_id: (row.epoch, row.seq) for row in await conn.execute(query)}


async def _insert(
    conn: AsyncConnection, dialect: str, epoch: int, items: list[Incoming], now: datetime
) -> set[str]:
    if not items:
        return set()
    values = [
        {
            "hub_id": item.record.hub_id,
            "epoch": epoch,
            "seq": item.record.seq,
            "record_id": item.record.id,
            "type": item.record.type,
            "payload": item.payload,
            "envelope": item.envelope,
            "prev_hash": item.record.body.prev_hash,
            "payload_hash": payload_hash(item.payload),
            "received_at": now,
            "chained": False,
        }
        for item in items
    ]
    query = insert_for(dialect, records).values(values).on_conflict_do_nothing()
    return set((await conn.execute(query.returning(records.c.record_id))).scalars())
