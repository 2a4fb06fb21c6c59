"""Advancing a hub's verified hash chain over stored records, epoch by epoch."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.errors import UnknownHubError
from cloud_sync.protocol.messages import decode_record

from . import effects
from .engine import insert_for
from .rows import ChainState
from .schema import alerts, hub_chains, records

log = structlog.get_logger(__name__)

# Records chained per query: bounds memory when a long backlog arrives after a gap fills.
CHAIN_CHUNK = 500
HELD_KIND = "chain_held"


async def lock_chain(conn: AsyncConnection, hub_id: str) -> ChainState:
    """Read the hub's chain row, locking it until commit (PostgreSQL; SQLite locks the file)."""
    query = sa.select(hub_chains).where(hub_chains.c.hub_id == hub_id).with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:  # add_hub writes the hub and its chain together
        raise UnknownHubError(hub_id)
    return ChainState(**row._mapping)


async def save_chain(conn: AsyncConnection, chain: ChainState) -> None:
    """Write the chain row back."""
    await conn.execute(
        sa.update(hub_chains)
        .where(hub_chains.c.hub_id == chain.hub_id)
        .values(
            epoch=chain.epoch,
            next_seq=chain.next_seq,
            last_hash=chain.last_hash,
            broken_seq=chain.broken_seq,
        )
    )


async def epoch_holds_records(conn: AsyncConnection, chain: ChainState) -> bool:
    """Whether the current epoch holds any record yet."""
    if chain.next_seq > 1:
        return True
    query = sa.select(records.c.seq).where(
        records.c.hub_id == chain.hub_id, records.c.epoch == chain.epoch
    )
    return (await conn.execute(query.limit(1))).first() is not None


async def break_chain(
    conn: AsyncConnection, dialect: str, chain: ChainState, *, seq: int, problem: str, now: datetime
) -> ChainState:
    """Mark the chain broken at ``seq`` and raise ``chain_broken`` (once per epoch)."""
    if chain.broken_seq is not None:
        return chain
    details = {"epoch": chain.epoch, "seq": seq, "problem": problem}
    message = f"record chain broken at seq {seq} (epoch {chain.epoch}): {problem}"
    alert = effects.NewAlert(chain.hub_id, "chain_broken", "critical", message, details)
    await effects.add_alert(conn, dialect, alert, now)
    log.error("chain.broken", hub_id=chain.hub_id, epoch=chain.epoch, seq=seq, problem=problem)
    return ChainState(chain.hub_id, chain.epoch, chain.next_seq, chain.last_hash, seq)


async def hold_back(
    conn: AsyncConnection,
    dialect: str,
    chain: ChainState,
    record_ids: Collection[str] | None,
    now: datetime,
) -> int:
    """Raise a ``chain_held`` alert for each unchained record of the broken epoch.

    ``record_ids`` limits it to those records (a batch stored behind a break that was
    already reported); None takes every one waiting (the chain just broke).
    """
    if chain.broken_seq is None or (record_ids is not None and not record_ids):
        return 0
    query = sa.select(records.c.seq, records.c.record_id, records.c.type).where(
        records.c.hub_id == chain.hub_id,
        records.c.epoch == chain.epoch,
        records.c.chained.is_(False),
    )
    if record_ids is not None:
        query = query.where(records.c.record_id.in_(list(record_ids)))
    rows = (await conn.execute(query.order_by(records.c.seq))).all()
    if not rows:
        return 0
    values = [_held_alert(chain, row.seq, row.record_id, row.type, now) for row in rows]
    # In chunks: both drivers cap the bound parameters of one statement (7 per alert).
    for start in range(0, len(values), CHAIN_CHUNK):
        await conn.execute(insert_for(dialect, alerts).values(values[start : start + CHAIN_CHUNK]))
    log.error(
        "chain.held_back",
        hub_id=chain.hub_id,
        epoch=chain.epoch,
        broken_seq=chain.broken_seq,
        records=len(rows),
        first_seq=rows[0].seq,
        last_seq=rows[-1].seq,
    )
    return len(rows)


def _held_alert(
    chain: ChainState, seq: int, record_id: str, type_: str, now: datetime
) -> dict[str, object]:
    message = (
        f"record seq {seq} ({type_}) is stored but held back: the chain broke at seq "
        f"{chain.broken_seq} (epoch {chain.epoch}); its effect waits for `lockhub cloud hub "
        "accept-chain`"
    )
    details = {
        "epoch": chain.epoch,
        "seq": seq,
        "record_id": record_id,
        "type": type_,
        "broken_seq": chain.broken_seq,
    }
    # record_id stays NULL: it names the record that raised an alert itself (a hub.alert),
    # which this record may still do once it is chained.
    return {
        "hub_id": chain.hub_id,
        "kind": HELD_KIND,
        "severity": "warning",
        "message": message,
        "details": details,
        "record_id": None,
        "created_at": now,
    }


async def _pending(conn: AsyncConnection, chain: ChainState) -> list[sa.Row[tuple[int, str, str]]]:
    query = (
        sa.select(records.c.seq, records.c.prev_hash, records.c.payload_hash)
        .where(
            records.c.hub_id == chain.hub_id,
            records.c.epoch == chain.epoch,
            records.c.chained.is_(False),
            records.c.seq >= chain.next_seq,
        )
        .order_by(records.c.seq)
        .limit(CHAIN_CHUNK)
    )
    return list(await conn.execute(query))


async def _adopt(conn: AsyncConnection, chain: ChainState) -> bool:
    """Move the next record of this epoch's chain that landed in the previous epoch.

    Workers may store a batch of a restarted chain before the batch holding its first
    record (the ``store.quarantined`` alert); the hash link proves where it belongs.
    """
    if chain.epoch <= 1:
        return False
    where = (
        records.c.hub_id == chain.hub_id,
        records.c.epoch == chain.epoch - 1,
        records.c.seq == chain.next_seq,
        records.c.chained.is_(False),
        records.c.prev_hash == chain.last_hash,
    )
    moved = await conn.execute(sa.update(records).where(*where).values(epoch=chain.epoch))
    return moved.rowcount == 1


async def advance(
    conn: AsyncConnection, dialect: str, chain: ChainState, now: datetime
) -> tuple[ChainState, int]:
    """Chain contiguous stored records from ``next_seq`` on; return the state and the count."""
    total = 0
    while chain.broken_seq is None:
        rows = await _pending(conn, chain)
        if not rows or rows[0].seq != chain.next_seq:
            if await _adopt(conn, chain):
                continue
            break
        chain, count = await _walk(conn, dialect, chain, rows, now)
        total += count
    return chain, total


async def _walk(
    conn: AsyncConnection,
    dialect: str,
    chain: ChainState,
    rows: list[sa.Row[tuple[int, str, str]]],
    now: datetime,
) -> tuple[ChainState, int]:
    next_seq, last_hash = chain.next_seq, chain.last_hash
    linked = 0
    for row in rows:
        if row.seq != next_seq:
            break
        if row.prev_hash != last_hash:
            chain = await break_chain(
                conn, dialect, chain, seq=row.seq, problem="prev_hash mismatch", now=now
            )
            break
        next_seq, last_hash, linked = next_seq + 1, row.payload_hash, linked + 1
    if linked:
        await _chain_run(conn, dialect, chain, next_seq - 1, now)
    state = ChainState(chain.hub_id, chain.epoch, next_seq, last_hash, chain.broken_seq)
    return state, linked


async def _chain_run(
    conn: AsyncConnection, dialect: str, chain: ChainState, last: int, now: datetime
) -> None:
    run = (
        records.c.hub_id == chain.hub_id,
        records.c.epoch == chain.epoch,
        records.c.seq.between(chain.next_seq, last),
    )
    await conn.execute(sa.update(records).where(*run).values(chained=True))
    payloads = await conn.execute(sa.select(records.c.payload).where(*run).order_by(records.c.seq))
    for (payload,) in payloads.all():
        await effects.apply(conn, dialect, decode_record(payload), now)
