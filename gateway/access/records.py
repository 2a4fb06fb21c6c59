"""Builders for the records the access engine writes (bodies as the wire contract defines)."""

from __future__ import annotations

from collections.abc import Mapping

from cloud_sync.protocol.ids import new_ulid
from cloud_sync.protocol.messages import Command, rfc3339

from ..locks.driver import LockEvent
from ..store import NewRecord, WindowRow

Clock = Mapping[str, object]
Details = dict[str, str | int | bool | None]


def window_status(
    row: WindowRow, status: str, clock: Clock, detail: str | None = None
) -> NewRecord:
    """A ``window.status`` record for ``row``.

    A window the hub knows only from a courier token holds version 0 (below any push); the
    protocol's versions start at 1, so it reports version 1.
    """
    body: dict[str, object] = {
        "window_id": row.window_id,
        "version": max(row.version, 1),
        "status": status,
        "clock": dict(clock),
    }
    if detail is not None:
        body["detail"] = detail
    return NewRecord("window.status", body)


def pod(
    window: WindowRow, event: LockEvent, method: str, credential_ref: str, clock: Clock
) -> tuple[str, NewRecord]:
    """A ``pod.recorded`` record resting on the lock's own ``event``; returns its pod_id too."""
    pod_id = new_ulid()
    body = {
        "pod_id": pod_id,
        "window_id": window.window_id,
        "task_id": window.task_id,
        "tenant_id": window.tenant_id,
        "lock_id": event.lock_id,
        "method": method,
        "credential_ref": credential_ref,
        "unlocked_at": rfc3339(event.at),
        "clock": dict(clock),
        "lock_event": {
            "vendor": event.vendor,
            "type": event.kind.value,
            "vendor_event_id": event.vendor_event_id,
        },
    }
    return pod_id, NewRecord("pod.recorded", body)


def lock_event(
    event: LockEvent, clock: Clock, *, unattributed: bool = False, extra: Details | None = None
) -> NewRecord:
    """A ``lock.event`` record for something the lock reported."""
    details: Details = {
        "trigger": event.trigger.value,
        "vendor": event.vendor,
        "vendor_event_id": event.vendor_event_id,
        "at": rfc3339(event.at),
    }
    if event.keypad_code_id is not None:
        details["keypad_code_id"] = event.keypad_code_id
    if event.battery_percent is not None:
        details["battery_percent"] = event.battery_percent
    details.update(extra or {})
    body = {
        "lock_id": event.lock_id,
        "event": event.kind.value,
        "unattributed": unattributed,
        "details": {k: v for k, v in details.items() if v is not None},
        "clock": dict(clock),
    }
    return NewRecord("lock.event", body)


def alert(kind: str, severity: str, message: str, clock: Clock, details: Details) -> NewRecord:
    """A ``hub.alert`` record for an operator."""
    body = {
        "kind": kind,
        "severity": severity,
        "message": message,
        "details": {k: v for k, v in details.items() if v is not None},
        "clock": dict(clock),
    }
    return NewRecord("hub.alert", body)


def denied(lock_id: str, source: str, credential: str, reason: str, clock: Clock) -> NewRecord:
    """An ``access.denied`` record (the courier only ever hears "denied")."""
    body = {
        "lock_id": lock_id,
        "source": source,
        "credential": credential,
        "reason": reason,
        "clock": dict(clock),
    }
    return NewRecord("access.denied", body)


def command_result(
    command: Command, kid: str, result: str, reason: str | None, clock: Clock
) -> NewRecord:
    """The ``command.result`` answering one verified command."""
    body: dict[str, object] = {
        "command_id": command.id,
        "command_type": command.type,
        "kid": kid,
        "seq": command.seq,
        "result": result,
        "clock": dict(clock),
    }
    if reason is not None:
        body["reason"] = reason
    return NewRecord("command.result", body)
