"""Access windows, tasks and PoDs."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .engine import insert_for
from .rows import PodRow, TaskRow, WindowRow
from .schema import pods, tasks, windows


async def insert_window(conn: AsyncConnection, dialect: str, window: WindowRow) -> None:
    """Store a new window and create its task (pending) if it is new."""
    task = insert_for(dialect, tasks).values(
        tenant_id=window.tenant_id,
        task_id=window.task_id,
        status="pending",
        delivered_at=None,
        pod_id=None,
        created_at=window.created_at,
        updated_at=window.created_at,
    )
    await conn.execute(task.on_conflict_do_nothing())
    await conn.execute(sa.insert(windows).values(**dataclasses.asdict(window)))


async def get_window(
    conn: AsyncConnection, tenant_id: str, window_id: str, *, lock: bool = False
) -> WindowRow | None:
    """The tenant's window ``window_id`` (None for another tenant's)."""
    query = sa.select(windows).where(
        windows.c.tenant_id == tenant_id, windows.c.window_id == window_id
    )
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    return None if row is None else WindowRow(**row._mapping)


async def list_windows(
    conn: AsyncConnection, tenant_id: str, task_id: str | None = None
) -> list[WindowRow]:
    """The tenant's windows (of one task), oldest first."""
    query = sa.select(windows).where(windows.c.tenant_id == tenant_id)
    if task_id is not None:
        query = query.where(windows.c.task_id == task_id)
    query = query.order_by(windows.c.created_at, windows.c.window_id)
    return [WindowRow(**row._mapping) for row in await conn.execute(query)]


async def hub_windows(conn: AsyncConnection, hub_id: str, now: datetime) -> list[WindowRow]:
    """The windows a hub should hold at ``now``: active and not yet ended, by id."""
    query = (
        sa.select(windows)
        .where(
            windows.c.hub_id == hub_id,
            windows.c.desired == "active",
            windows.c.ends_at > now,
        )
        .order_by(windows.c.window_id)
    )
    return [WindowRow(**row._mapping) for row in await conn.execute(query)]


async def revoke_windows(
    conn: AsyncConnection, found: list[WindowRow], now: datetime
) -> list[WindowRow]:
    """Revoke active windows at a new version; forget their codes; return them as stored."""
    revoked = []
    for window in found:
        if window.desired != "active":
            revoked.append(window)
            continue
        changed = dataclasses.replace(
            window,
            desired="revoked",
            version=window.version + 1,
            code_hash=None,
            code_sealed=None,
            updated_at=now,
        )
        await conn.execute(
            sa.update(windows)
            .where(windows.c.window_id == window.window_id)
            .values(
                desired="revoked",
                version=changed.version,
                code_hash=None,
                code_sealed=None,
                updated_at=now,
            )
        )
        revoked.append(changed)
    return revoked


async def complete_task(
    conn: AsyncConnection, tenant_id: str, task_id: str, now: datetime
) -> tuple[TaskRow, list[WindowRow]] | None:
    """Mark the task completed and revoke its windows; None if the task is unknown."""
    task = await get_task(conn, tenant_id, task_id)
    if task is None:
        return None
    await conn.execute(
        sa.update(tasks)
        .where(tasks.c.tenant_id == tenant_id, tasks.c.task_id == task_id)
        .values(status="completed", updated_at=now)
    )
    found = await list_windows(conn, tenant_id, task_id)
    revoked = await revoke_windows(conn, found, now)
    done = dataclasses.replace(task, status="completed", updated_at=now)
    return done, revoked


async def get_task(conn: AsyncConnection, tenant_id: str, task_id: str) -> TaskRow | None:
    """The tenant's task (None if unknown)."""
    query = sa.select(tasks).where(tasks.c.tenant_id == tenant_id, tasks.c.task_id == task_id)
    row = (await conn.execute(query)).first()
    return None if row is None else TaskRow(**row._mapping)


async def get_pod(conn: AsyncConnection, pod_id: str) -> PodRow | None:
    """The PoD ``pod_id`` (None if unknown)."""
    row = (await conn.execute(sa.select(pods).where(pods.c.pod_id == pod_id))).first()
    return None if row is None else PodRow(**row._mapping)
