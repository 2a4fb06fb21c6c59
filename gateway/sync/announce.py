"""What the hub tells the cloud on connect: the signed ``hub.hello`` and the status JSON."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal

from cloud_sync.protocol.control import MAX_COMMAND_KEYS, status_payload, window_set_digest
from cloud_sync.protocol.envelope import Signer, encode_batch
from cloud_sync.protocol.messages import hello_payload

from .. import __version__
from ..access.engine import AccessEngine
from ..locks.driver import LockState
from ..store import WindowRow

Health = dict[str, str | int | float | bool | None]


def digest_of(windows: Iterable[WindowRow]) -> str:
    """``window_set_digest`` over every window the hub holds (tombstones and ended ones too)."""
    return window_set_digest((row.window_id, row.version) for row in windows)


def set_version_of(engine: AccessEngine) -> int | None:
    """The last ``windows.sync`` set the hub reconciled, or None (held in memory only)."""
    return engine.reconciled_set_version


def hello_batch(
    *,
    signer: Signer,
    engine: AccessEngine,
    last_command_seq: Mapping[str, int],
    head_seq: int,
    now: datetime,
) -> bytes:
    """The ``up/hello`` message: one signed ``hub.hello`` envelope in a batch."""
    # The model allows MAX_COMMAND_KEYS kids; more trusted keys than that is a config mistake
    # the hello must survive, so the highest sequences win.
    newest = sorted(last_command_seq.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_COMMAND_KEYS]
    body = {
        "last_command_seq": dict(newest),
        "window_set_digest": digest_of(engine.cache),
        "set_version": set_version_of(engine),
        "software_version": __version__,
    }
    payload = hello_payload(hub_id=signer.kid, seq=head_seq, issued_at=now, body=body)
    return encode_batch([signer.sign(payload)])


def health_of(engine: AccessEngine, outbox_depth: int, protocol: str) -> Health:
    """A small health summary for the status message (counts only, no ids or secrets)."""
    states = [c.state.state for c in engine.coordinators.values()]
    return {
        "outbox_depth": outbox_depth,
        "locks": len(states),
        "locks_unreachable": sum(s is LockState.UNREACHABLE for s in states),
        "windows": len(engine.cache),
        "clock_synced": engine.clock.trusted(),
        "mqtt": protocol,
    }


def status_message(
    *,
    hub_id: str,
    state: Literal["online", "offline"],
    connected_at: datetime,
    reason: str | None = None,
    health: Health | None = None,
) -> bytes:
    """The retained ``up/status`` JSON (``offline`` doubles as the Last Will)."""
    return status_payload(
        hub_id=hub_id,
        state=state,
        connected_at=connected_at,
        software_version=__version__,
        reason=reason,
        health=health,
    )
