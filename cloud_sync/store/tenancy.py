"""Hubs, API keys and command sequence numbers."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.errors import ConflictError, UnknownHubError
from cloud_sync.protocol.chain import GENESIS_HASH

from .engine import insert_for
from .rows import ApiKeyRow, HubRow
from .schema import api_keys, command_seqs, hub_chains, hub_tenants, hubs

FIRST_EPOCH = 1


async def add_hub(conn: AsyncConnection, dialect: str, hub: HubRow) -> HubRow:
    """Register ``hub`` (and its empty chain); the same keys again are a no-op."""
    await conn.execute(
        insert_for(dialect, hubs).values(**_hub_values(hub)).on_conflict_do_nothing()
    )
    stored = await get_hub(conn, hub.hub_id)
    if (stored.signing_key, stored.sealing_key) != (hub.signing_key, hub.sealing_key):
        raise ConflictError(f"hub {hub.hub_id!r} is registered with other keys")
    chain = {
        "hub_id": hub.hub_id,
        "epoch": FIRST_EPOCH,
        "next_seq": 1,
        "last_hash": GENESIS_HASH,
        "broken_seq": None,
    }
    await conn.execute(insert_for(dialect, hub_chains).values(**chain).on_conflict_do_nothing())
    return stored


def _hub_values(hub: HubRow) -> dict[str, object]:
    return {
        "hub_id": hub.hub_id,
        "signing_key": hub.signing_key,
        "sealing_key": hub.sealing_key,
        "registered_at": hub.registered_at,
    }


async def get_hub(conn: AsyncConnection, hub_id: str) -> HubRow:
    """The registered hub ``hub_id``; UnknownHubError if there is none."""
    row = (await conn.execute(sa.select(hubs).where(hubs.c.hub_id == hub_id))).first()
    if row is None:
        raise UnknownHubError(hub_id)
    return HubRow(**row._mapping)


async def grant_hub(
    conn: AsyncConnection, dialect: str, hub_id: str, tenant_id: str, now: datetime
) -> None:
    """Let ``tenant_id`` create windows on ``hub_id`` (granting twice is a no-op)."""
    await get_hub(conn, hub_id)
    values = {"hub_id": hub_id, "tenant_id": tenant_id, "granted_at": now}
    await conn.execute(insert_for(dialect, hub_tenants).values(**values).on_conflict_do_nothing())


async def hub_serves(conn: AsyncConnection, hub_id: str, tenant_id: str) -> bool:
    """True when ``hub_id`` was granted to ``tenant_id``."""
    query = sa.select(hub_tenants.c.hub_id).where(
        hub_tenants.c.hub_id == hub_id, hub_tenants.c.tenant_id == tenant_id
    )
    return (await conn.execute(query)).first() is not None


async def list_hubs(conn: AsyncConnection) -> list[HubRow]:
    """Every registered hub, by id."""
    rows = await conn.execute(sa.select(hubs).order_by(hubs.c.hub_id))
    return [HubRow(**row._mapping) for row in rows]


async def allocate_seqs(conn: AsyncConnection, dialect: str, kid: str, count: int) -> range:
    """Reserve ``count`` consecutive command seqs of ``kid``; unique across workers."""
    if count < 1:
        raise ValueError("allocate at least one seq")
    # The row may not exist yet; two workers inserting it at once both succeed (DO NOTHING).
    seed = insert_for(dialect, command_seqs).values(kid=kid, last_seq=0)
    await conn.execute(seed.on_conflict_do_nothing())
    # One atomic read-modify-write: the row lock (or SQLite's write lock) orders workers.
    bump = (
        sa.update(command_seqs)
        .where(command_seqs.c.kid == kid)
        .values(last_seq=command_seqs.c.last_seq + count)
        .returning(command_seqs.c.last_seq)
    )
    last = int((await conn.execute(bump)).scalar_one())
    return range(last - count + 1, last + 1)


async def add_api_key(conn: AsyncConnection, key: ApiKeyRow) -> None:
    """Store a new API key (its hash only)."""
    await conn.execute(
        sa.insert(api_keys).values(
            key_id=key.key_id,
            tenant_id=key.tenant_id,
            prefix=key.prefix,
            key_hash=key.key_hash,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )
    )


async def api_key_by_prefix(conn: AsyncConnection, prefix: str) -> ApiKeyRow | None:
    """The API key with ``prefix``, revoked or not."""
    query = sa.select(api_keys).where(api_keys.c.prefix == prefix)
    row = (await conn.execute(query)).first()
    return None if row is None else ApiKeyRow(**row._mapping)


async def list_api_keys(conn: AsyncConnection, tenant_id: str) -> list[ApiKeyRow]:
    """A tenant's API keys, oldest first."""
    query = (
        sa.select(api_keys)
        .where(api_keys.c.tenant_id == tenant_id)
        .order_by(api_keys.c.created_at, api_keys.c.key_id)
    )
    return [ApiKeyRow(**row._mapping) for row in await conn.execute(query)]


async def revoke_api_key(conn: AsyncConnection, prefix: str, at: datetime) -> bool:
    """Revoke the key with ``prefix``; False if there is none or it was revoked already."""
    query = (
        sa.update(api_keys)
        .where(api_keys.c.prefix == prefix, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return (await conn.execute(query)).rowcount == 1
