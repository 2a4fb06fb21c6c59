"""Re-anchoring a broken hash chain once an operator has looked into the break.

``lockhub cloud hub accept-chain --id H --from-seq N`` says: the hub's record N continues
its chain, whatever it links to. Two breaks lead here (docs/operations.md):

- a record whose ``prev_hash`` does not match (it is stored, held back): N is its seq, and
  its ``prev_hash`` becomes the anchor;
- a hub restored from an older ``hub.db`` that wrote new records under seqs the cloud had
  already chained: those are refused as conflicts and the hub keeps resending them. The
  chained records from N on move aside to a new negative epoch (their effects stand: those
  deliveries happened), the anchor is the hash of record N-1, and the hub's resends of N...
  are then stored and chained.

Everything held back from N on is chained and applied in the same transaction, under the
chain's row lock, so each effect happens once however many workers run.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.errors import ConflictError, InvalidRequestError
from cloud_sync.protocol.chain import GENESIS_HASH

from . import effects
from .chain import advance, hold_back, lock_chain, save_chain
from .rows import ChainAccepted, ChainState
from .schema import records

log = structlog.get_logger(__name__)

ACCEPTED_KIND = "chain_accepted"


async def accept_chain(
    conn: AsyncConnection, dialect: str, hub_id: str, from_seq: int, now: datetime
) -> ChainAccepted:
    """Re-anchor ``hub_id``'s broken chain at ``from_seq`` and chain what it held back."""
    chain = await lock_chain(conn, hub_id)
    broken = chain.broken_seq
    if broken is None:
        raise ConflictError(
            f"the record chain of hub {hub_id!r} is not broken (epoch {chain.epoch}, next seq "
            f"{chain.next_seq}): there is nothing to accept"
        )
    if from_seq < broken:
        raise InvalidRequestError(
            "from_seq", f"must be at least {broken}, where the chain broke: before it, it holds"
        )
    anchor = await _anchor(conn, chain, from_seq)
    superseded, moved_to = await _supersede(conn, chain, from_seq)
    chain = ChainState(hub_id, chain.epoch, from_seq, anchor, None)
    chain, chained = await advance(conn, dialect, chain, now)
    await hold_back(conn, dialect, chain, None, now)
    await save_chain(conn, chain)
    accepted = ChainAccepted(
        hub_id, chain.epoch, from_seq, superseded, moved_to, chained, chain.next_seq,
        chain.broken_seq,
    )  # fmt: skip
    await _record(conn, dialect, accepted, broken, now)
    return accepted


async def _anchor(conn: AsyncConnection, chain: ChainState, from_seq: int) -> str:
    """The hash record ``from_seq`` is taken to follow."""
    held = await _hashes(conn, chain, from_seq, chained=False)
    if held is not None:
        return held[0]
    if from_seq == 1:
        return GENESIS_HASH
    before = await _hashes(conn, chain, from_seq - 1, chained=True)
    if before is not None:
        return before[1]
    raise InvalidRequestError(
        "from_seq",
        f"no record {from_seq} has arrived yet and record {from_seq - 1} is not chained: "
        "there is nothing to anchor to; wait for the hub to send it",
    )


async def _hashes(
    conn: AsyncConnection, chain: ChainState, seq: int, *, chained: bool
) -> tuple[str, str] | None:
    """``(prev_hash, payload_hash)`` of the epoch's record ``seq``, if it is (un)chained."""
    query = sa.select(records.c.prev_hash, records.c.payload_hash).where(
        records.c.hub_id == chain.hub_id,
        records.c.epoch == chain.epoch,
        records.c.seq == seq,
        records.c.chained.is_(chained),
    )
    row = (await conn.execute(query)).first()
    return None if row is None else (row.prev_hash, row.payload_hash)


async def _supersede(
    conn: AsyncConnection, chain: ChainState, from_seq: int
) -> tuple[int, int | None]:
    """Move chained records from ``from_seq`` on to a fresh negative epoch."""
    if from_seq >= chain.next_seq:
        return 0, None
    lowest = sa.select(sa.func.min(records.c.epoch)).where(records.c.hub_id == chain.hub_id)
    target = min((await conn.execute(lowest)).scalar_one() or 0, 0) - 1
    moved = await conn.execute(
        sa.update(records)
        .where(
            records.c.hub_id == chain.hub_id,
            records.c.epoch == chain.epoch,
            records.c.seq >= from_seq,
            records.c.chained.is_(True),
        )
        .values(epoch=target)
    )
    return moved.rowcount, target


async def _record(
    conn: AsyncConnection, dialect: str, done: ChainAccepted, broken: int, now: datetime
) -> None:
    details = {
        "epoch": done.epoch,
        "from_seq": done.from_seq,
        "broken_seq": broken,
        "superseded": done.superseded,
        "superseded_epoch": done.superseded_epoch,
        "chained": done.chained,
    }
    message = (
        f"an operator accepted the chain from seq {done.from_seq} (broken at {broken}, "
        f"epoch {done.epoch}): {done.chained} held-back records chained"
    )
    alert = effects.NewAlert(done.hub_id, ACCEPTED_KIND, "info", message, details)
    await effects.add_alert(conn, dialect, alert, now)
    log.warning("chain.accepted", hub_id=done.hub_id, **details)
