"""Valid sample bodies and payloads for every message type, shared by the protocol tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloud_sync.protocol import GENESIS_HASH, command_payload, seal_code
from cloud_sync.protocol.messages import build_record

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HUB = "hub-0001"
CLOCK = {"synced": True, "source": "timesyncd"}
ULID = "01JNJ4Y2B3C4D5E6F7G8H9JKMN"
SEALING_KEY = X25519PrivateKey.from_private_bytes(bytes(range(32)))
SEALED = seal_code("123456", "win-1", SEALING_KEY.public_key())


def upsert_body(window_id: str = "win-1", version: int = 1) -> dict[str, Any]:
    """A valid window.upsert body."""
    return {
        "window_id": window_id,
        "tenant_id": "tenant-a",
        "task_id": "task-1",
        "lock_id": "front-door",
        "starts_at": "2026-03-01T12:00:00.000Z",
        "ends_at": "2026-03-01T14:00:00.000Z",
        "version": version,
        "max_uses": 1,
        "enforcement": "hub",
        "code_sealed": SEALED,
        "courier": {"id": "c-7", "name": "Ada"},
        "carrier_job_id": "job-9",
    }


COMMAND_BODIES: dict[str, dict[str, Any]] = {
    "window.upsert": upsert_body(),
    "window.revoke": {"window_id": "win-1", "version": 2, "reason": "task cancelled"},
    "windows.sync": {"set_version": 3, "page": 1, "pages": 1, "windows": [upsert_body()]},
    "task.complete": {"task_id": "task-1"},
}

_LINK = {"prev_hash": GENESIS_HASH, "clock": CLOCK}
RECORD_BODIES: dict[str, dict[str, Any]] = {
    "pod.recorded": {
        **_LINK,
        "pod_id": ULID,
        "window_id": "win-1",
        "task_id": "task-1",
        "tenant_id": "tenant-a",
        "lock_id": "front-door",
        "method": "hub_code",
        "credential_ref": "window:win-1",
        "unlocked_at": "2026-03-01T12:05:00.000Z",
        "relocked_at": None,
        "lock_event": {"vendor": "sim", "type": "unlocked", "vendor_event_id": "e-1"},
    },
    "lock.event": {
        **_LINK,
        "lock_id": "front-door",
        "event": "unlocked",
        "unattributed": True,
        "details": {"battery": 80, "door": "open", "rssi": -61.5, "manual": False, "x": None},
    },
    "access.denied": {
        **_LINK,
        "lock_id": "front-door",
        "source": "api:192.0.2.10",
        "credential": "code",
        "reason": "no_match",
    },
    "access.lockout": {
        **_LINK,
        "lock_id": "front-door",
        "source": "api:192.0.2.10",
        "failures": 5,
        "locked_until": "2026-03-01T12:00:30.000Z",
        "level": 1,
    },
    "window.status": {
        **_LINK,
        "window_id": "win-1",
        "version": 1,
        "status": "set_on_lock",
        "detail": None,
    },
    "command.result": {
        **_LINK,
        "command_id": ULID,
        "command_type": "window.upsert",
        "kid": "cloud-2026",
        "seq": 7,
        "result": "rejected",
        "reason": "expired",
    },
    "clock.status": {**_LINK, "step_ms": -1500, "detail": "timesyncd synchronized"},
    "hub.alert": {
        **_LINK,
        "kind": "unattributed_unlock",
        "severity": "warning",
        "message": "front-door opened outside any window",
        "details": {"lock_id": "front-door"},
    },
}


def command(type_: str = "window.upsert", seq: int = 1, hub_id: str = HUB, **kw: Any) -> bytes:
    """A valid command payload of ``type_``."""
    return command_payload(
        type=type_,  # type: ignore[arg-type]
        hub_id=hub_id,
        seq=seq,
        issued_at=kw.get("issued_at", NOW),
        expires_at=kw.get("expires_at", NOW + timedelta(hours=1)),
        body=kw.get("body", COMMAND_BODIES[type_]),
    )


def record(type_: str = "lock.event", seq: int = 1, prev_hash: str = GENESIS_HASH) -> bytes:
    """A valid record payload of ``type_``."""
    body = {**RECORD_BODIES[type_], "prev_hash": prev_hash}
    return build_record(type=type_, hub_id=HUB, seq=seq, issued_at=NOW, body=body)  # type: ignore[arg-type]
