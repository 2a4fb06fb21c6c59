"""Request bodies (strict pydantic) and the JSON views of windows and tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_core.core_schema import ValidationInfo

from cloud_sync.protocol.fields import HubId, Ident, Text, rfc3339
from cloud_sync.requests import DateTime, Strict
from cloud_sync.store import PodRow, TaskView, WindowView

# The wire's bound on uses (WindowUpsertBody): a window is for deliveries, not a door badge.
MAX_USES = 1_000_000


class CourierIn(Strict):
    """Who the window is for, for display and audit."""

    id: Ident
    name: Annotated[Text, Field(min_length=1)]


class WindowRequest(Strict):
    """The body of ``POST /v1/{tenant}/locks/access-windows``."""

    task_id: Ident
    hub_id: HubId
    lock_id: Ident
    starts_at: DateTime
    ends_at: DateTime
    max_uses: Annotated[int, Field(ge=1, le=MAX_USES)] | None = None
    enforcement: Literal["hub", "lock", "both"] = "hub"
    courier: CourierIn | None = None
    carrier_job_id: Ident | None = None

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, ends_at: datetime, info: ValidationInfo) -> datetime:
        starts_at = info.data.get("starts_at")
        if isinstance(starts_at, datetime) and ends_at <= starts_at:
            raise ValueError("must be after starts_at")
        return ends_at


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def window_json(view: WindowView) -> dict[str, Any]:
    """A window as the API shows it, with the sync state the hub last reported."""
    return {
        "window_id": view.window_id,
        "task_id": view.task_id,
        "hub_id": view.hub_id,
        "lock_id": view.lock_id,
        "starts_at": rfc3339(view.starts_at),
        "ends_at": rfc3339(view.ends_at),
        "version": view.version,
        "max_uses": view.max_uses,
        "enforcement": view.enforcement,
        "courier": view.courier,
        "carrier_job_id": view.carrier_job_id,
        "desired": view.desired,
        "sync": {
            "hub_status": view.hub_status,
            "hub_status_at": _time(view.hub_status_at),
            "hub_version": view.hub_version,
            # The hub has reported on this very version: what it holds is what we want.
            "up_to_date": view.hub_version == view.version,
        },
        "created_at": rfc3339(view.created_at),
        "updated_at": rfc3339(view.updated_at),
    }


def pod_json(pod: PodRow) -> dict[str, Any]:
    """A proof of delivery as the API shows it (the signed record stays in the store)."""
    return {
        "pod_id": pod.pod_id,
        "window_id": pod.window_id,
        "hub_id": pod.hub_id,
        "lock_id": pod.lock_id,
        "method": pod.method,
        "unlocked_at": rfc3339(pod.unlocked_at),
        "record_seq": pod.seq,
    }


def task_json(view: TaskView) -> dict[str, Any]:
    """A task's status, its PoD and its windows."""
    return {
        "task_id": view.task_id,
        "status": view.status,
        "delivered_at": _time(view.delivered_at),
        "pod": None if view.pod is None else pod_json(view.pod),
        "window_ids": view.window_ids,
    }
