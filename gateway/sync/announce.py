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
from ..access.windows import WindowState
from ..locks.driver import LockState
from ..store import WindowRow

Health = dict[str, str | int | float | bool | None]
# Health fields whose change is news at once (a fresh retained status), not at the next
# periodic refresh: the outbox depth alone moves with every record and ack.
NOTABLE_HEALTH = ("locks", "locks_unreachable", "clock_synced", "outbox_alert")


def digest_of(windows: Iterable[WindowRow], now: datetime) -> str:
    """``window_set_digest`` over the windows the hub holds that have not ended by ``now``.

    The cloud's desired set (``cloud_sync.store.windows.hub_windows``) is its windows not
    revoked and not ended, so revoked windows, tombstones and ended windows stay out here
    too: otherwise every hello after a revoke would trigger a full ``windows.sync``. A used
    window (max_uses reached) is still held on both sides. Around an ``ends_at`` the two
    clocks may disagree for a moment; that costs one resync.
    """
    held = (
        (row.window_id, row.version)
        for row in windows
        if row.state != WindowState.REVOKED and row.ends_at > now
    )
    return window_set_digest(held)


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
        "window_set_digest": digest_of(engine.cache, now),
        "set_version": set_version_of(engine),
        "software_version": __version__,
    }
    payload = hello_payload(hub_id=signer.kid, seq=head_seq, issued_at=now, body=body)
    return encode_batch([signer.sign(payload)])


def health_of(
    engine: AccessEngine, outbox_depth: int, protocol: str, outbox_alert: str | None = None
) -> Health:
    """A small health summary for the status message (counts only, no ids or secrets)."""
    states = [c.state.state for c in engine.coordinators.values()]
    return {
        "outbox_depth": outbox_depth,
        "outbox_alert": outbox_alert,
        "locks": len(states),
        "locks_unreachable": sum(s is LockState.UNREACHABLE for s in states),
        "windows": len(engine.cache),
        "clock_synced": engine.clock.trusted(),
        "mqtt": protocol,
    }


def notable(health: Health) -> tuple[object, ...]:
    """The part of a health summary whose change deserves a fresh status at once."""
    return tuple(health.get(name) for name in NOTABLE_HEALTH)


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
