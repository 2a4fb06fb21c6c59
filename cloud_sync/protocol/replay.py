"""Anti-replay: accept each seq per signing key at most once, within a sliding window of 64.

Like IPsec's anti-replay bitmap (RFC 4303 section 3.4.3): bit ``i`` of ``bitmap`` is set when
``highest - i`` has been accepted. A seq above ``highest`` slides the window forward; one at
most ``REPLAY_WINDOW - 1`` below it is accepted once; anything older is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import MalformedError, ReplayError

# DESIGN.md fixes 64: enough for commands from several cloud workers to arrive out of order,
# and the bitmap fits one unsigned 64-bit integer.
REPLAY_WINDOW = 64
_FULL = (1 << REPLAY_WINDOW) - 1
_MAX_SEQ = 2**63 - 1
_SIGN_BIT = 1 << 63


@dataclass(frozen=True, slots=True)
class ReplayState:
    """What the store persists per kid: the highest accepted seq and the 64-bit bitmap."""

    highest: int = 0
    bitmap: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.highest <= _MAX_SEQ or not 0 <= self.bitmap <= _FULL:
            raise MalformedError("replay state out of range")
        if self.bitmap >> self.highest or (self.highest and not self.bitmap & 1):
            # Bit 0 is the highest seq itself; bits past seq 1 would name seqs below 1.
            raise MalformedError("replay bitmap does not match highest")


def check(state: ReplayState, seq: int) -> None:
    """Raise ReplayError unless ``seq`` would be accepted in ``state``."""
    if not 1 <= seq <= _MAX_SEQ:
        raise ReplayError(f"seq {seq} out of range")
    if seq > state.highest:
        return
    offset = state.highest - seq
    if offset >= REPLAY_WINDOW:
        raise ReplayError(f"seq {seq} is older than the replay window")
    if state.bitmap >> offset & 1:
        raise ReplayError(f"seq {seq} was already accepted")


def accept(state: ReplayState, seq: int) -> ReplayState:
    """Return the state after accepting ``seq``; raise ReplayError if it may not be."""
    check(state, seq)
    if seq > state.highest:
        shift = seq - state.highest
        bitmap = (state.bitmap << shift | 1) & _FULL if shift < REPLAY_WINDOW else 1
        return ReplayState(highest=seq, bitmap=bitmap)
    return ReplayState(highest=state.highest, bitmap=state.bitmap | 1 << (state.highest - seq))


def to_sqlite(bitmap: int) -> int:
    """Map an unsigned 64-bit bitmap onto SQLite's signed INTEGER (two's complement)."""
    return bitmap - (1 << 64) if bitmap & _SIGN_BIT else bitmap


def from_sqlite(value: int) -> int:
    """Inverse of ``to_sqlite``."""
    return value & _FULL


@dataclass(slots=True)
class ReplayGuard:
    """Replay windows for every signing key; mutable, restored from and saved to the store."""

    states: dict[str, ReplayState] = field(default_factory=dict)

    @classmethod
    def restore(cls, states: Mapping[str, ReplayState]) -> ReplayGuard:
        """Build a guard from persisted states."""
        return cls(states=dict(states))

    def state(self, kid: str) -> ReplayState:
        """The current state for ``kid`` (empty if never seen)."""
        return self.states.get(kid, ReplayState())

    def check(self, kid: str, seq: int) -> None:
        """Raise ReplayError unless ``seq`` from ``kid`` would be accepted."""
        check(self.state(kid), seq)

    def accept(self, kid: str, seq: int) -> ReplayState:
        """Accept ``seq`` from ``kid`` and return the new state to persist."""
        new = accept(self.state(kid), seq)
        self.states[kid] = new
        return new
