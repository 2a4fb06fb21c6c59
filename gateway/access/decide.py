"""Deciding whether a courier's code or token opens a lock now: pure, no I/O, no side effects.

Every refusal carries a reason for the hub's own records (``access.denied``); the courier is
told only "denied", whatever the reason, so answers never say which part was wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloud_sync.protocol.errors import ExpiredError, NotYetValidError, ProtocolError
from cloud_sync.protocol.tokens import CourierTokenClaims, check_token_time, verify_courier_token

from ..store import WindowRow
from .apply import SyncMark
from .codes import code_hash, same, well_formed
from .windows import HUB_ENFORCED, WindowState, state_at

# Courier phones and QR readers disagree with the hub's clock by seconds, not minutes.
TOKEN_LEEWAY_SECONDS = 60
# The cloud reads a hub's desired set, then builds and signs its windows.sync pages (seconds
# for 100,000 windows): a token minted in between names a window the set cannot hold though
# it is newer than the set. Tokens minted this close before the set's issued_at are not judged
# by it; NTP keeps the cloud's machines within a second, and a revoke still arrives as its own
# window.revoke, so the margin leaves no revoked window open for long.
SYNC_SNAPSHOT_MARGIN = timedelta(seconds=60)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass(frozen=True, slots=True)
class Grant:
    """The credential opens the lock through ``window`` (an implied one for a token)."""

    window: WindowRow
    method: str
    credential_ref: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """The credential does not open the lock; ``reason`` is for records only."""

    reason: str
    counts_as_guess: bool = True


@dataclass(frozen=True, slots=True)
class Context:
    """What a decision needs: the time, the grace, how many uses are already in flight."""

    now: datetime
    grace: timedelta
    in_flight: Mapping[str, int]


def _usable(window: WindowRow, ctx: Context) -> Refusal | None:
    state = state_at(window, ctx.now, ctx.grace)
    if state is WindowState.REVOKED:
        return Refusal("revoked")
    if state is WindowState.USED:
        return Refusal("used_up")
    if state is not WindowState.ACTIVE:
        return Refusal("not_active")
    reserved = window.uses + ctx.in_flight.get(window.window_id, 0)
    if window.max_uses is not None and reserved >= window.max_uses:
        return Refusal("used_up")
    return None


def decide_code(
    code: str, lock_id: str, secret: bytes, candidates: list[WindowRow], ctx: Context
) -> Grant | Refusal:
    """Check a code typed for ``lock_id`` against the windows that hold its keyed hash."""
    if not well_formed(code):
        return Refusal("no_match")
    digest = code_hash(secret, lock_id, code)
    matching = [
        w for w in candidates if same(w.code_hash, digest) and w.enforcement in HUB_ENFORCED
    ]
    if not matching:
        return Refusal("no_match")
    refusal: Refusal | None = None
    for window in sorted(matching, key=lambda w: w.ends_at):
        refusal = _usable(window, ctx)
        if refusal is None:
            return Grant(window, "hub_code", f"code:{digest[:6].hex()}")
    assert refusal is not None  # noqa: S101 - matching is non-empty, so the loop ran
    return refusal


def _never(_: str) -> bool:
    return False


def implied_window(claims: CourierTokenClaims, now: datetime) -> WindowRow:
    """The window a valid token stands for when its push never reached this hub."""
    from ..store import Courier  # noqa: PLC0415 - only tokens need it

    return WindowRow(
        window_id=claims.win,
        tenant_id=claims.ten,
        task_id=claims.task,
        lock_id=claims.lock,
        starts_at=datetime.fromtimestamp(claims.nbf, now.tzinfo),
        ends_at=datetime.fromtimestamp(claims.exp, now.tzinfo),
        version=0,
        max_uses=claims.max,
        uses=0,
        enforcement="hub",
        state=WindowState.SCHEDULED,
        code_hash=b"",
        code_sealed=None,
        courier=Courier(claims.sub, claims.name or ""),
        carrier_job_id=None,
        updated_at=now,
        origin="token",
    )


def minted_ms(claims: CourierTokenClaims) -> int:
    """When the token was issued, in Unix milliseconds: the time in its ``jti`` (a ULID's first
    48 bits). A plain number: a ULID's time reaches past the year 9999 that datetime ends at."""
    millis = 0
    for char in claims.jti[:10]:
        millis = millis * 32 + _CROCKFORD.index(char)
    return millis


def token_refusal(
    claims: CourierTokenClaims,
    held: WindowRow | None,
    completed: Callable[[str], bool],
    mark: SyncMark | None,
) -> Refusal | None:
    """Why a token is revoked although no window row says so, or None.

    Its task was completed (``task.complete`` names tasks, not windows, and a token's window
    may never have reached the hub); or the hub holds no row for its window and a complete
    ``windows.sync`` issued after the token was minted did not name that window.
    """
    if completed(claims.task):
        return Refusal("revoked")
    if held is not None or mark is None or claims.win in mark.unapplied:
        return None
    margin_ms = SYNC_SNAPSHOT_MARGIN.total_seconds() * 1000
    if minted_ms(claims) < mark.issued_at.timestamp() * 1000 - margin_ms:
        return Refusal("revoked")
    return None


def decide_token(
    token: str,
    lock_id: str,
    *,
    hub_id: str,
    keys: Mapping[str, Ed25519PublicKey],
    held_for: Callable[[str], WindowRow | None],
    ctx: Context,
    completed: Callable[[str], bool] | None = None,
    sync_mark: SyncMark | None = None,
) -> Grant | Refusal:
    """Check a courier token offline: signature, hub, lock, its own validity, the window.

    ``completed`` says whether a task was completed (``WindowCache.task_completed``) and
    ``sync_mark`` is the last complete ``windows.sync`` (``SyncPages.mark``): see
    ``token_refusal``.
    """
    try:
        verified = verify_courier_token(token, keys, hub_id=hub_id)
        check_token_time(verified.claims, ctx.now, TOKEN_LEEWAY_SECONDS)
    except (ExpiredError, NotYetValidError):
        # access.denied reasons are a closed set: outside its validity, a token is not active.
        return Refusal("not_active")
    except ProtocolError:
        return Refusal("bad_token")
    claims = verified.claims
    if claims.lock != lock_id:
        return Refusal("bad_token")
    held = held_for(claims.win)
    refusal = token_refusal(claims, held, completed or _never, sync_mark)
    if refusal is not None:
        return refusal
    window = held or implied_window(claims, ctx.now)
    refusal = _token_window(window, lock_id, ctx)
    if refusal is not None:
        return refusal
    return Grant(window, "courier_token", f"token:{claims.jti}")


def _token_window(window: WindowRow, lock_id: str, ctx: Context) -> Refusal | None:
    """Whether the window a token names (held, or implied by the token) admits it now."""
    if window.origin == "token":
        # The token's own signed validity is the window; the hub's grace does not extend it.
        return _usable(window, Context(ctx.now, timedelta(0), ctx.in_flight))
    if window.origin == "tombstone":
        return _usable(window, ctx)
    if window.lock_id != lock_id:
        # The window was moved to another lock since the token was issued.
        return Refusal("bad_token")
    if window.enforcement not in HUB_ENFORCED:
        # A lock-only window is for the lock's own keypad: the hub's API never opens it.
        return Refusal("no_match")
    return _usable(window, ctx)
