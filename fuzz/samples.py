"""Fixed keys and valid inputs for every target: the seeds a fuzz run starts from.

Keys are derived from fixed labels so that a crash file replays the same way on any machine.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloud_sync.protocol import (
    GENESIS_HASH,
    Signer,
    ack_payload,
    build_record,
    command_payload,
    encode_batch,
    hello_payload,
    issue_courier_token,
    jsoncodec,
    seal_code,
    status_payload,
    window_set_digest,
)
from cloud_sync.protocol.tokens import CourierTokenClaims
from gateway.locks.ble.nuki import codec

REPO = Path(__file__).resolve().parents[1]
HUB = "hub-0001"
CLOUD_KID = "cloud-2026"
WINDOW = "win-1"
LOCK = "front-door"
NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
ULID = "01JNJ4Y2B3C4D5E6F7G8H9JKMN"
CLOCK = {"synced": True, "source": "timesyncd"}


def _seed(label: str) -> bytes:
    return hashlib.sha256(f"lockhub fuzz {label}".encode()).digest()


CLOUD_KEY = Ed25519PrivateKey.from_private_bytes(_seed("cloud"))
HUB_KEY = Ed25519PrivateKey.from_private_bytes(_seed("hub"))
SEALING_KEY = X25519PrivateKey.from_private_bytes(_seed("sealing"))
NUKI_KEY = _seed("nuki")
CLOUD = Signer(CLOUD_KID, CLOUD_KEY)
HUB_SIGNER = Signer(HUB, HUB_KEY)
# What a hub trusts for commands and tokens, and what the cloud trusts for this hub's records.
COMMAND_KEYS = {CLOUD_KID: CLOUD_KEY.public_key()}
HUB_KEYS = {HUB: HUB_KEY.public_key()}
SEALED = seal_code("123456", WINDOW, SEALING_KEY.public_key())


def upsert_body() -> dict[str, Any]:
    """A valid window.upsert body."""
    return {
        "window_id": WINDOW,
        "tenant_id": "tenant-a",
        "task_id": "task-1",
        "lock_id": LOCK,
        "starts_at": "2026-03-01T12:00:00.000Z",
        "ends_at": "2026-03-01T14:00:00.000Z",
        "version": 1,
        "max_uses": 1,
        "enforcement": "hub",
        "code_sealed": SEALED,
        "courier": {"id": "c-7", "name": "Ada"},
        "carrier_job_id": "job-9",
    }


COMMAND_BODIES: dict[str, dict[str, Any]] = {
    "window.upsert": upsert_body(),
    "window.revoke": {"window_id": WINDOW, "version": 2, "reason": "task cancelled"},
    "windows.sync": {"set_version": 3, "page": 1, "pages": 1, "windows": [upsert_body()]},
    "task.complete": {"task_id": "task-1"},
}
_LINK = {"prev_hash": GENESIS_HASH, "clock": CLOCK}
RECORD_BODIES: dict[str, dict[str, Any]] = {
    "pod.recorded": {
        **_LINK,
        "pod_id": ULID,
        "window_id": WINDOW,
        "task_id": "task-1",
        "tenant_id": "tenant-a",
        "lock_id": LOCK,
        "method": "hub_code",
        "credential_ref": "window:win-1",
        "unlocked_at": "2026-03-01T12:05:00.000Z",
        "relocked_at": None,
        "lock_event": {"vendor": "sim", "type": "unlocked", "vendor_event_id": "e-1"},
    },
    "lock.event": {
        **_LINK,
        "lock_id": LOCK,
        "event": "unlocked",
        "unattributed": True,
        "details": {"battery": 80, "door": "open", "rssi": -61.5, "manual": False, "x": None},
    },
    "access.denied": {
        **_LINK,
        "lock_id": LOCK,
        "source": "api:192.0.2.10",
        "credential": "code",
        "reason": "no_match",
    },
    "access.lockout": {
        **_LINK,
        "lock_id": LOCK,
        "source": "api:192.0.2.10",
        "failures": 5,
        "locked_until": "2026-03-01T12:00:30.000Z",
        "level": 1,
    },
    "window.status": {**_LINK, "window_id": WINDOW, "version": 1, "status": "set_on_lock"},
    "command.result": {
        **_LINK,
        "command_id": ULID,
        "command_type": "window.upsert",
        "kid": CLOUD_KID,
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
        "details": {"lock_id": LOCK},
    },
}


def commands() -> list[bytes]:
    """A valid payload of every command type, for this hub, unexpired at NOW."""
    issued = NOW - timedelta(minutes=5)
    return [
        command_payload(
            type=type_,  # type: ignore[arg-type]
            hub_id=HUB,
            seq=seq,
            issued_at=issued,
            expires_at=issued + timedelta(hours=1),
            body=body,
        )
        for seq, (type_, body) in enumerate(COMMAND_BODIES.items(), start=1)
    ]


def records() -> list[bytes]:
    """A valid payload of every record type."""
    return [
        build_record(type=type_, hub_id=HUB, seq=seq, issued_at=NOW, body=body)  # type: ignore[arg-type]
        for seq, (type_, body) in enumerate(RECORD_BODIES.items(), start=1)
    ]


def acks() -> list[bytes]:
    """Valid ``records.ack`` payloads: one range, several ranges."""
    return [
        ack_payload(hub_id=HUB, issued_at=NOW, acked=[(1, 1)], ack_id=ULID),
        ack_payload(hub_id=HUB, issued_at=NOW, acked=[(1, 5), (7, 9), (12, 40)], ack_id=ULID),
    ]


def hellos() -> list[bytes]:
    """A valid ``hub.hello`` payload."""
    body = {
        "last_command_seq": {CLOUD_KID: 41},
        "window_set_digest": window_set_digest([(WINDOW, 1)]),
        "set_version": 3,
        "software_version": "0.1.0",
    }
    return [hello_payload(hub_id=HUB, seq=7, issued_at=NOW, body=body, hello_id=ULID)]


def statuses() -> list[bytes]:
    """Valid ``up/status`` documents: online with health, and the offline Last Will."""
    return [
        status_payload(
            hub_id=HUB,
            state="online",
            connected_at=NOW,
            software_version="0.1.0",
            health={"outbox_depth": 3, "clock_synced": True},
        ),
        status_payload(
            hub_id=HUB, state="offline", connected_at=NOW, software_version="0.1.0", reason="lwt"
        ),
    ]


def batches() -> list[bytes]:
    """Signed batches as they travel on MQTT (commands by the cloud, records by the hub)."""
    return [
        encode_batch([CLOUD.sign(payload) for payload in commands()]),
        encode_batch([HUB_SIGNER.sign(payload) for payload in records()[:3]]),
        encode_batch([CLOUD.sign(acks()[0])]),
    ]


def token_claims() -> dict[str, Any]:
    """The claims of a courier token for WINDOW on LOCK, valid around NOW."""
    start = int(NOW.timestamp()) - 600
    return {
        "v": 1,
        "jti": ULID,
        "aud": HUB,
        "sub": "courier-7",
        "name": "Sam",
        "win": WINDOW,
        "lock": LOCK,
        "ten": "tenant-a",
        "task": "task-1",
        "nbf": start,
        "exp": start + 3600,
        "max": 1,
    }


def token_claims_json() -> bytes:
    """The claims as a token carries them (compact JSON, sorted keys)."""
    return jsoncodec.dumps(token_claims())


def tokens() -> list[str]:
    """A valid courier token for this hub."""
    return [issue_courier_token(CourierTokenClaims(**token_claims()), CLOUD)]


def nuki_frames() -> list[bytes]:
    """Plain and encrypted Nuki frames (the payloads are all-zero placeholders of a real size)."""
    plain = [codec.encode_plain(command, bytes(size)) for command, size in _plain_sizes()]
    nonce = _seed("nonce")[:24]
    encrypted = [
        codec.encode_encrypted(NUKI_KEY, nonce, 7, command, bytes(size))
        for command, size in _encrypted_sizes()
    ]
    return plain + encrypted


def _plain_sizes() -> list[tuple[int, int]]:
    return list(codec.PLAIN_PAYLOAD_BYTES.items())


# The payload size of each message the codec decodes (challenged commands carry a 32-byte
# nonce, admin ones a 2-byte PIN after it).
NUKI_PAYLOAD_BYTES: dict[int, int] = {
    codec.Command.REQUEST_DATA: 2,
    codec.Command.PUBLIC_KEY: 32,
    codec.Command.CHALLENGE: 32,
    codec.Command.AUTHORIZATION_DATA: 101,
    codec.Command.AUTHORIZATION_ID: 84,
    codec.Command.KEYTURNER_STATES: 19,
    codec.Command.LOCK_ACTION: 6 + 32,
    codec.Command.STATUS: 1,
    codec.Command.ERROR_REPORT: 3,
    codec.Command.AUTHORIZATION_ID_CONFIRMATION: 36,
    codec.Command.REQUEST_LOG_ENTRIES: 8 + 32 + 2,
    codec.Command.LOG_ENTRY: 48,
    codec.Command.LOG_ENTRY_COUNT: 3,
    codec.Command.ADD_KEYPAD_CODE: 44,
    codec.Command.KEYPAD_CODE_ID: 2,
    codec.Command.REQUEST_KEYPAD_CODES: 4,
    codec.Command.KEYPAD_CODE_COUNT: 2,
    codec.Command.KEYPAD_CODE: 63,
    codec.Command.UPDATE_KEYPAD_CODE: 47,
    codec.Command.REMOVE_KEYPAD_CODE: 2,
}


def _encrypted_sizes() -> list[tuple[int, int]]:
    return [(int(command), size) for command, size in NUKI_PAYLOAD_BYTES.items()]


def bridge_replies() -> list[bytes]:
    """Nuki Bridge HTTP API replies and a callback body, as the bridge sends them."""
    state = {
        "mode": 2,
        "state": 1,
        "stateName": "locked",
        "batteryCritical": False,
        "batteryCharging": False,
        "batteryChargeState": 85,
        "doorsensorState": 2,
        "doorsensorStateName": "door closed",
    }
    values: list[object] = [
        [{"nukiId": 11, "deviceType": 0, "name": "Front", "lastKnownState": state}],
        {**state, "success": True},
        {"success": True, "batteryCritical": False},
        {"callbacks": [{"id": 0, "url": "http://192.0.2.1:8080/v1/callbacks/front-door"}]},
        {"bridgeType": 1, "versions": {"firmwareVersion": "2.14.0"}, "currentTime": "x"},
        {"success": True, "token": "abc123"},
        {"nukiId": 11, "deviceType": 0, **state},
    ]
    return [json.dumps(value).encode() for value in values]


def unlock_bodies() -> list[bytes]:
    """Bodies a courier's device posts to the unlock endpoint."""
    return [b'{"code":"123456"}', json.dumps({"token": tokens()[0]}).encode(), b'{"code":1}']


def hub_configs() -> list[bytes]:
    """The shipped hub config example and a minimal one."""
    minimal = b'[hub]\nid = "hub-1"\nstate_dir = "state"\n\n[mqtt]\nurl = "mqtt://broker"\n'
    return [(REPO / "config" / "gateway.example.toml").read_bytes(), minimal]


def cloud_configs() -> list[bytes]:
    """The shipped cloud config example."""
    return [(REPO / "config" / "cloud.example.toml").read_bytes()]
