"""What a record does once it is chained: PoDs deliver tasks, statuses, alerts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from cloud_sync.protocol.fields import dump
from cloud_sync.protocol.records import (
    AccessLockout,
    HubAlert,
    PodRecorded,
    Record,
    WindowStatus,
)

from .engine import insert_for
from .schema import alerts, pods, tasks, windows

log = structlog.get_logger(__name__)


async def apply(conn: AsyncConnection, dialect: str, record: Record, now: datetime) -> None:
    """Apply the effect of one newly chained record (exactly once: chaining happens once)."""
    if isinstance(record, PodRecorded):
        await _pod(conn, dialect, record, now)
    elif isinstance(record, WindowStatus):
        await _window_status(conn, record)
    elif isinstance(record, HubAlert):
        body = record.body
        alert = NewAlert(
            record.hub_id, body.kind, body.severity, body.message, dict(body.details), record.id
        )
        await add_alert(conn, dialect, alert, now)
    elif isinstance(record, AccessLockout):
        await _lockout(conn, dialect, record, now)


@dataclass(frozen=True, slots=True)
class NewAlert:
    """An alert to store; ``record_id`` names the record that raised it, if any."""

    hub_id: str
    kind: str
    severity: str
    message: str
    details: dict[str, Any] | None
    record_id: str | None = None


async def add_alert(conn: AsyncConnection, dialect: str, alert: NewAlert, now: datetime) -> None:
    """Store an alert; a record raises at most one."""
    values = {**dataclasses.asdict(alert), "created_at": now}
    await conn.execute(insert_for(dialect, alerts).values(**values).on_conflict_do_nothing())
    log.warning("alert.raised", hub_id=alert.hub_id, kind=alert.kind, severity=alert.severity)


async def _pod(conn: AsyncConnection, dialect: str, record: PodRecorded, now: datetime) -> None:
    body = record.body
    values = {
        "pod_id": body.pod_id,
        "tenant_id": body.tenant_id,
        "task_id": body.task_id,
        "window_id": body.window_id,
        "hub_id": record.hub_id,
        "seq": record.seq,
        "lock_id": body.lock_id,
        "method": body.method,
        "unlocked_at": body.unlocked_at,
        "body": dump(body),
    }
    await conn.execute(insert_for(dialect, pods).values(**values).on_conflict_do_nothing())
    if not await _window_matches(conn, record):
        # A hub may only deliver tasks of windows the cloud gave it: never trust the
        # tenant and task a record names on their own.
        message = f"PoD {body.pod_id} names window {body.window_id} that this hub does not hold"
        details = {"window_id": body.window_id, "task_id": body.task_id}
        alert = NewAlert(record.hub_id, "pod_unmatched", "warning", message, details, record.id)
        await add_alert(conn, dialect, alert, now)
        return
    await _deliver(conn, dialect, record, now)
    log.info("task.delivered", task_id=body.task_id, pod_id=body.pod_id, hub_id=record.hub_id)


async def _window_matches(conn: AsyncConnection, record: PodRecorded) -> bool:
    body = record.body
    query = sa.select(windows.c.window_id).where(
        windows.c.window_id == body.window_id,
        windows.c.hub_id == record.hub_id,
        windows.c.tenant_id == body.tenant_id,
        windows.c.task_id == body.task_id,
    )
    return (await conn.execute(query)).first() is not None


async def _deliver(conn: AsyncConnection, dialect: str, record: PodRecorded, now: datetime) -> None:
    body = record.body
    insert = insert_for(dialect, tasks).values(
        tenant_id=body.tenant_id,
        task_id=body.task_id,
        status="delivered",
        delivered_at=body.unlocked_at,
        pod_id=body.pod_id,
        created_at=now,
        updated_at=now,
    )
    # The first PoD delivers the task; later ones (a second unlock) are kept but do not move it.
    upsert = insert.on_conflict_do_update(
        index_elements=[tasks.c.tenant_id, tasks.c.task_id],
        set_={
            "status": sa.case((tasks.c.status == "pending", "delivered"), else_=tasks.c.status),
            "delivered_at": sa.func.coalesce(tasks.c.delivered_at, insert.excluded.delivered_at),
            "pod_id": sa.func.coalesce(tasks.c.pod_id, insert.excluded.pod_id),
            "updated_at": insert.excluded.updated_at,
        },
    )
    await conn.execute(upsert)


async def _window_status(conn: AsyncConnection, record: WindowStatus) -> None:
    body = record.body
    query = (
        sa.update(windows)
        .where(windows.c.window_id == body.window_id, windows.c.hub_id == record.hub_id)
        .values(hub_status=body.status, hub_status_at=record.issued_at, hub_version=body.version)
    )
    await conn.execute(query)


async def _lockout(
    conn: AsyncConnection, dialect: str, record: AccessLockout, now: datetime
) -> None:
    body = record.body
    details: dict[str, Any] = {
        "lock_id": body.lock_id,
        "source": body.source,
        "failures": body.failures,
        "level": body.level,
        "locked_until": dump(body)["locked_until"],
    }
    message = f"{body.failures} failed attempts on {body.lock_id}: source locked out"
    alert = NewAlert(record.hub_id, "access.lockout", "warning", message, details, record.id)
    await add_alert(conn, dialect, alert, now)
