"""Signed commands in: verify, check, guard against replay, apply, answer with a record.

Transport-neutral: the MQTT link hands each ``down/commands`` message to ``handle``, and the
local admin API accepts the same signed batches for sites with no uplink. A command whose
signature does not verify cannot be trusted to say who it is, so it gets no
``command.result``; it raises a (rate-limited) ``hub.alert`` instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloud_sync.protocol.envelope import decode_batch, verify
from cloud_sync.protocol.errors import PolicyError, ProtocolError, SignatureError
from cloud_sync.protocol.messages import decode_command
from cloud_sync.protocol.policy import check_command
from cloud_sync.protocol.replay import ReplayGuard, accept

from ..store import Store, StoreLowSpaceError
from . import records
from .engine import AccessEngine

log = structlog.get_logger(__name__)

# A broker (or anyone who can publish to it) could send garbage without end; the hub reports
# the first few per hour; every one is logged and counted (lockhub_commands_unverified_total).
UNVERIFIED_ALERTS_PER_HOUR = 10
# The reason a command that would add a window gets while the disk is full (the store's
# low-space mode keeps what space is left for proof of delivery).
STORAGE_FULL = "storage_full"
_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What became of one envelope: ``applied`` or ``rejected`` and why."""

    result: str
    reason: str | None = None
    command_id: str | None = None


class CommandIntake:
    """Turns signed command batches into applied window changes and result records."""

    def __init__(
        self,
        *,
        engine: AccessEngine,
        store: Store,
        hub_id: str,
        keys: Mapping[str, Ed25519PublicKey],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._store = store
        self._hub_id = hub_id
        self._keys = keys
        self._monotonic = monotonic
        self._replay = ReplayGuard()
        self._alerts: list[float] = []
        # Every command that failed verification, by reason (lockhub_commands_unverified_total).
        self.unverified: dict[str, int] = {}

    async def start(self) -> None:
        """Restore the replay windows persisted by earlier runs."""
        self._replay = ReplayGuard.restore(await self._store.load_replay())

    def last_seq(self) -> dict[str, int]:
        """The highest command seq accepted per signing key (for ``hub.hello``)."""
        return {kid: state.highest for kid, state in self._replay.states.items()}

    async def handle(self, data: bytes) -> list[IntakeResult]:
        """Process one message of one or more signed commands, in order."""
        try:
            envelopes = decode_batch(data)
        except ProtocolError as exc:
            await self._unverified("malformed", str(exc))
            return [IntakeResult("rejected", "malformed")]
        return [await self._one(envelope) for envelope in envelopes]

    async def _one(self, envelope: object) -> IntakeResult:
        try:
            verified = verify(envelope, self._keys)
            command = decode_command(verified.payload)
        except ProtocolError as exc:
            # UnknownKeyError (a kid this hub does not trust) is a SignatureError too.
            reason = "bad_signature" if isinstance(exc, SignatureError) else "malformed"
            await self._unverified(reason, str(exc))
            return IntakeResult("rejected", reason)
        # Signed cloud time bounds the hub's clock even when the command itself is refused.
        self._engine.clock.observe_cloud_time(command.issued_at)
        try:
            check_command(verified, command, hub_id=self._hub_id, now=self._engine.clock.now())
            new_state = accept(self._replay.state(verified.kid), command.seq)
        except PolicyError as exc:
            await self._engine.reject(command, verified.kid, exc.reason)
            return IntakeResult("rejected", exc.reason, command.id)
        try:
            outcome = await self._engine.apply(command, verified.kid, new_state)
        except StoreLowSpaceError:
            # The replay slot stays free: the cloud may send the command again later.
            await self._engine.reject(command, verified.kid, STORAGE_FULL)
            return IntakeResult("rejected", STORAGE_FULL, command.id)
        # Only after the commit: a failed commit must leave the seq acceptable on redelivery.
        self._replay.states[verified.kid] = new_state
        return IntakeResult(outcome.result, outcome.reason, command.id)

    async def _unverified(self, reason: str, detail: str) -> None:
        log.warning("command.unverified", reason=reason, detail=detail)
        self.unverified[reason] = self.unverified.get(reason, 0) + 1
        now = self._monotonic()
        self._alerts = [t for t in self._alerts if now - t < _HOUR]
        if len(self._alerts) >= UNVERIFIED_ALERTS_PER_HOUR:
            return
        self._alerts.append(now)
        clock = self._engine.clock.status().as_record()
        message = "a command on the command channel failed verification"
        details: records.Details = {"reason": reason, "detail": detail[:200]}
        await self._store.append_records(
            [records.alert("command_unverified", "warning", message, clock, details)]
        )
