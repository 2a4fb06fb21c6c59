"""Deciding codes and tokens at the door: shapes, locks, enforcement, uses, grace, tombstones."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.protocol.envelope import Signer
from cloud_sync.protocol.records import AccessDeniedReason
from cloud_sync.protocol.tokens import CourierTokenClaims, issue_courier_token
from gateway.access.codes import code_hash, same, well_formed
from gateway.access.decide import (
    TOKEN_LEEWAY_SECONDS,
    Context,
    Grant,
    Refusal,
    decide_code,
    decide_token,
)
from gateway.access.windows import WindowState, tombstone
from gateway.store import Courier, WindowRow

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=5)
TICK = timedelta(microseconds=1)
SECRET = bytes(range(32))
CODE = "482913"
LOCK = "front-door"
OTHER_LOCK = "back-door"
HUB = "hub-0001"
CLOUD = Signer("cloud-1", Ed25519PrivateKey.from_private_bytes(bytes(32)))
KEYS = {CLOUD.kid: CLOUD.key.public_key()}
JTI = "01JNJ4Y2B3C4D5E6F7G8H9JKMN"
REASONS = frozenset(get_args(AccessDeniedReason))


def ctx(now: datetime = NOW, **in_flight: int) -> Context:
    """A decision context at ``now`` with the hub's grace."""
    return Context(now, GRACE, in_flight)


def window(
    window_id: str = "w1", *, code: str = CODE, lock: str = LOCK, **fields: Any
) -> WindowRow:
    """A pushed window on ``lock`` holding ``code``, active from an hour ago for two hours."""
    row = WindowRow(
        window_id=window_id,
        tenant_id="tenant-a",
        task_id="task-1",
        lock_id=lock,
        starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(hours=1),
        version=1,
        max_uses=None,
        uses=0,
        enforcement="hub",
        state=WindowState.ACTIVE,
        code_hash=code_hash(SECRET, lock, code),
        code_sealed=None,
        courier=None,
        carrier_job_id=None,
        updated_at=NOW,
    )
    return replace(row, **fields)


def refused(decision: Grant | Refusal) -> str:
    """The reason of a refusal (failing the test on a grant); always one records accept."""
    assert isinstance(decision, Refusal), decision
    assert decision.reason in REASONS
    return decision.reason


def granted(decision: Grant | Refusal) -> str:
    """The window id of a grant (failing the test on a refusal)."""
    assert isinstance(decision, Grant), decision
    return decision.window.window_id


# Codes at rest.


def test_a_code_hash_binds_the_lock_and_the_code() -> None:
    digest = code_hash(SECRET, LOCK, CODE)
    assert len(digest) == 32
    assert same(digest, code_hash(SECRET, LOCK, CODE))
    assert not same(digest, code_hash(SECRET, OTHER_LOCK, CODE))
    assert not same(digest, code_hash(SECRET, LOCK, "482914"))
    assert not same(digest, code_hash(bytes(32), LOCK, CODE))


@pytest.mark.parametrize("code", ["123456", "1234567890", "A-b_c" * 4])
def test_courier_codes_and_token_codes_are_well_formed(code: str) -> None:
    assert well_formed(code)


@pytest.mark.parametrize(
    "code", ["", "12345", "12345678901", "12 456", "48291\uff13", "abc", "a" * 129, "1234567\n"]
)
def test_a_malformed_code_is_no_match_before_any_window_is_looked_at(code: str) -> None:
    assert not well_formed(code)
    decision = decide_code(code, LOCK, SECRET, [window(code=code)], ctx())
    assert refused(decision) == "no_match"
    assert decision == Refusal("no_match")


# decide_code.


def test_the_right_code_in_an_active_window_is_granted_without_the_code_in_the_reference() -> None:
    decision = decide_code(CODE, LOCK, SECRET, [window()], ctx())
    assert isinstance(decision, Grant)
    assert (decision.window.window_id, decision.method) == ("w1", "hub_code")
    assert decision.credential_ref.startswith("code:")
    assert CODE not in decision.credential_ref


def test_the_same_code_for_another_lock_matches_nothing() -> None:
    candidates = [window(lock=OTHER_LOCK)]
    assert refused(decide_code(CODE, LOCK, SECRET, candidates, ctx())) == "no_match"
    assert granted(decide_code(CODE, OTHER_LOCK, SECRET, candidates, ctx())) == "w1"


def test_a_wrong_code_matches_nothing() -> None:
    assert refused(decide_code("482914", LOCK, SECRET, [window()], ctx())) == "no_match"


@pytest.mark.parametrize(("enforcement", "opens"), [("hub", True), ("both", True), ("lock", False)])
def test_only_hub_enforced_windows_accept_a_code_at_the_hub(enforcement: str, opens: bool) -> None:
    decision = decide_code(CODE, LOCK, SECRET, [window(enforcement=enforcement)], ctx())
    assert isinstance(decision, Grant) is opens
    if not opens:
        assert refused(decision) == "no_match"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"state": WindowState.REVOKED}, "revoked"),
        ({"state": WindowState.USED}, "used_up"),
        ({"max_uses": 1, "uses": 1}, "used_up"),
        ({"state": WindowState.EXPIRED}, "not_active"),
        ({"starts_at": NOW + GRACE + TICK, "state": WindowState.SCHEDULED}, "not_active"),
        ({"ends_at": NOW - GRACE}, "not_active"),
    ],
)
def test_a_window_that_is_not_active_refuses_its_code(fields: dict[str, Any], reason: str) -> None:
    assert refused(decide_code(CODE, LOCK, SECRET, [window(**fields)], ctx())) == reason


def test_the_grace_admits_a_code_from_start_minus_grace_until_end_plus_grace() -> None:
    row = window(starts_at=NOW, ends_at=NOW + timedelta(hours=1), state=WindowState.SCHEDULED)
    assert refused(decide_code(CODE, LOCK, SECRET, [row], ctx(NOW - GRACE - TICK))) == "not_active"
    assert granted(decide_code(CODE, LOCK, SECRET, [row], ctx(NOW - GRACE))) == "w1"
    end = row.ends_at + GRACE
    assert granted(decide_code(CODE, LOCK, SECRET, [row], ctx(end - TICK))) == "w1"
    assert refused(decide_code(CODE, LOCK, SECRET, [row], ctx(end))) == "not_active"


def test_of_several_windows_sharing_a_code_the_earliest_ending_usable_one_wins() -> None:
    late = window("late", ends_at=NOW + timedelta(hours=3))
    early = window("early", ends_at=NOW + timedelta(hours=2))
    used = window("used", ends_at=NOW + timedelta(minutes=30), max_uses=1, uses=1)
    future = window(
        "future", starts_at=NOW + timedelta(hours=1), ends_at=NOW + timedelta(hours=1, minutes=1)
    )
    candidates = [late, used, future, early]
    assert granted(decide_code(CODE, LOCK, SECRET, candidates, ctx())) == "early"
    revoked = replace(early, state=WindowState.REVOKED)
    assert granted(decide_code(CODE, LOCK, SECRET, [late, revoked], ctx())) == "late"


def test_when_no_window_sharing_a_code_is_usable_the_last_ending_ones_reason_is_given() -> None:
    used = window("used", ends_at=NOW + timedelta(minutes=30), max_uses=1, uses=1)
    revoked = window("revoked", state=WindowState.REVOKED)
    assert refused(decide_code(CODE, LOCK, SECRET, [revoked, used], ctx())) == "revoked"


def test_uses_in_flight_count_against_max_uses() -> None:
    single = window(max_uses=1)
    assert granted(decide_code(CODE, LOCK, SECRET, [single], ctx())) == "w1"
    assert refused(decide_code(CODE, LOCK, SECRET, [single], ctx(w1=1))) == "used_up"
    double = window(max_uses=2, uses=1)
    assert refused(decide_code(CODE, LOCK, SECRET, [double], ctx(w1=1))) == "used_up"
    assert granted(decide_code(CODE, LOCK, SECRET, [window(max_uses=2)], ctx(w1=1))) == "w1"
    assert granted(decide_code(CODE, LOCK, SECRET, [window()], ctx(w1=50))) == "w1"
    # Another window's reservations are not this one's.
    assert granted(decide_code(CODE, LOCK, SECRET, [single], ctx(w2=1))) == "w1"


# decide_token.


def token(**fields: Any) -> str:
    """A courier token for window win-t on the front door, valid for an hour from NOW."""
    claims = {
        "v": 1,
        "jti": JTI,
        "aud": HUB,
        "sub": "courier-7",
        "name": "Ada",
        "win": "win-t",
        "lock": LOCK,
        "ten": "tenant-a",
        "task": "task-1",
        "nbf": int(NOW.timestamp()),
        "exp": int((NOW + timedelta(hours=1)).timestamp()),
        "max": 1,
        **fields,
    }
    return issue_courier_token(CourierTokenClaims.model_validate(claims), CLOUD)


def decide(
    tok: str,
    lock_id: str = LOCK,
    held: WindowRow | None = None,
    now: datetime = NOW,
    in_flight: dict[str, int] | None = None,
) -> Grant | Refusal:
    """Decide ``tok`` with ``held`` as the only window the hub holds."""
    return decide_token(
        tok,
        lock_id,
        hub_id=HUB,
        keys=KEYS,
        held_for=lambda window_id: held if held and held.window_id == window_id else None,
        ctx=ctx(now, **(in_flight or {})),
    )


def test_a_token_whose_push_never_arrived_opens_through_the_window_it_implies() -> None:
    decision = decide(token())
    assert isinstance(decision, Grant)
    assert (decision.method, decision.credential_ref) == ("courier_token", f"token:{JTI}")
    implied = decision.window
    assert (implied.window_id, implied.lock_id, implied.task_id, implied.tenant_id) == (
        "win-t",
        LOCK,
        "task-1",
        "tenant-a",
    )
    assert (implied.starts_at, implied.ends_at) == (NOW, NOW + timedelta(hours=1))
    assert (implied.max_uses, implied.uses, implied.origin) == (1, 0, "token")
    assert implied.courier == Courier("courier-7", "Ada")
    unnamed = decide(token(name=None))
    assert isinstance(unnamed, Grant)
    assert unnamed.window.courier == Courier("courier-7", "")


def test_the_hubs_grace_does_not_extend_a_token_window() -> None:
    tok = token()
    end = NOW + timedelta(hours=1)
    assert granted(decide(tok, now=end - TICK)) == "win-t"
    # Within the clock leeway the token itself still verifies; its window is over all the same.
    assert refused(decide(tok, now=end)) == "not_active"
    assert refused(decide(tok, now=NOW - timedelta(seconds=TOKEN_LEEWAY_SECONDS))) == "not_active"


def test_a_token_outside_its_validity_and_leeway_is_not_active() -> None:
    tok = token()
    leeway = timedelta(seconds=TOKEN_LEEWAY_SECONDS)
    assert refused(decide(tok, now=NOW - leeway - timedelta(seconds=1))) == "not_active"
    assert refused(decide(tok, now=NOW + timedelta(hours=1) + leeway)) == "not_active"


def test_a_pushed_window_gives_a_token_the_hubs_grace() -> None:
    end = NOW + timedelta(hours=1)
    held = window("win-t", starts_at=NOW, ends_at=end)
    assert granted(decide(token(), held=held, now=end + timedelta(seconds=30))) == "win-t"


def test_a_tombstone_refuses_a_token_for_its_window() -> None:
    assert refused(decide(token(), held=tombstone("win-t", 2, NOW))) == "revoked"


def test_a_revoked_or_used_pushed_window_refuses_its_token() -> None:
    revoked = window("win-t", state=WindowState.REVOKED)
    assert refused(decide(token(), held=revoked)) == "revoked"
    used = window("win-t", max_uses=1, uses=1)
    assert refused(decide(token(), held=used)) == "used_up"


def test_a_token_for_another_lock_is_a_bad_token() -> None:
    assert refused(decide(token(), lock_id=OTHER_LOCK)) == "bad_token"


def test_a_token_whose_window_moved_to_another_lock_no_longer_opens_the_first() -> None:
    moved = window("win-t", lock=OTHER_LOCK, version=2)
    assert refused(decide(token(), held=moved)) == "bad_token"


def test_a_token_window_already_held_counts_its_uses_and_reservations() -> None:
    first = decide(token())
    assert isinstance(first, Grant)
    assert refused(decide(token(), in_flight={"win-t": 1})) == "used_up"
    after_use = replace(first.window, uses=1)
    assert refused(decide(token(), held=after_use)) == "used_up"
    unlimited = replace(first.window, max_uses=None, uses=1)
    assert granted(decide(token(), held=unlimited)) == "win-t"


@pytest.mark.parametrize(
    "tok",
    [
        "",
        "not.a.token",
        "a" * 3000,
        token()[:-4] + "AAAA",
        issue_courier_token(
            CourierTokenClaims.model_validate(
                {
                    "v": 1,
                    "jti": JTI,
                    "aud": HUB,
                    "sub": "c",
                    "win": "w",
                    "lock": LOCK,
                    "ten": "t",
                    "task": "k",
                    "nbf": int(NOW.timestamp()),
                    "exp": int(NOW.timestamp()) + 60,
                    "max": None,
                }
            ),
            Signer("unknown-kid", Ed25519PrivateKey.generate()),
        ),
    ],
)
def test_a_malformed_forged_or_unknown_key_token_is_a_bad_token(tok: str) -> None:
    assert refused(decide(tok)) == "bad_token"


def test_a_token_for_another_hub_is_a_bad_token() -> None:
    assert refused(decide(token(aud="hub-0002"))) == "bad_token"


def test_a_token_signed_with_a_key_named_like_the_hub_is_a_bad_token() -> None:
    hub_signer = Signer(HUB, CLOUD.key)
    claims = CourierTokenClaims.model_validate(
        {
            "v": 1,
            "jti": JTI,
            "aud": HUB,
            "sub": "c",
            "win": "w",
            "lock": LOCK,
            "ten": "t",
            "task": "k",
            "nbf": int(NOW.timestamp()),
            "exp": int(NOW.timestamp()) + 60,
            "max": None,
        }
    )
    tok = issue_courier_token(claims, hub_signer)
    decision = decide_token(
        tok,
        LOCK,
        hub_id=HUB,
        keys={HUB: CLOUD.key.public_key()},
        held_for=lambda _: None,
        ctx=ctx(),
    )
    assert refused(decision) == "bad_token"
