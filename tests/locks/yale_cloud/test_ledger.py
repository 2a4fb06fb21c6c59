"""The operation ledger: which request an activity confirms, and how long tries are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.locks.bridges.yale_cloud.activities import CloudActivity
from gateway.locks.bridges.yale_cloud.ledger import (
    ATTEMPTS_KEPT,
    OPERATION_CLOCK_SLACK,
    OperationLedger,
)
from gateway.locks.driver import EventKind, Trigger

SENT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def remote(kind: EventKind, at: datetime, user: str = "me") -> CloudActivity:
    at_ms = round(at.timestamp() * 1000)
    return CloudActivity(f"k{at_ms}", "lock", "remote", at_ms, kind, Trigger.REMOTE, user)


def test_an_activity_confirms_the_oldest_matching_try_once() -> None:
    ledger = OperationLedger()
    ledger.remember("a", EventKind.UNLOCKED, SENT)
    ledger.remember("b", EventKind.UNLOCKED, SENT + timedelta(seconds=5))
    ledger.remember("c", EventKind.LOCKED, SENT)
    assert ledger.claim(remote(EventKind.UNLOCKED, SENT + timedelta(seconds=1)), "me") == "a"
    assert ledger.claim(remote(EventKind.UNLOCKED, SENT + timedelta(seconds=6)), "me") == "b"
    assert ledger.claim(remote(EventKind.UNLOCKED, SENT + timedelta(seconds=7)), "me") is None
    attempt = ledger.get("a")
    assert attempt is not None
    assert attempt.confirmed


def test_only_this_accounts_recent_remote_operations_confirm() -> None:
    ledger = OperationLedger()
    ledger.remember("a", EventKind.UNLOCKED, SENT)
    assert ledger.claim(remote(EventKind.UNLOCKED, SENT, user="someone-else"), "me") is None
    too_early = SENT - OPERATION_CLOCK_SLACK - timedelta(seconds=1)
    assert ledger.claim(remote(EventKind.UNLOCKED, too_early), "me") is None
    manual = CloudActivity(
        "m", "lock", "manual_unlock", 0, EventKind.UNLOCKED, Trigger.MANUAL, "me"
    )
    assert ledger.claim(manual, "me") is None
    assert ledger.claim(remote(EventKind.UNLOCKED, SENT - OPERATION_CLOCK_SLACK), "me") == "a"


def test_old_tries_are_forgotten() -> None:
    ledger = OperationLedger()
    for n in range(ATTEMPTS_KEPT + 1):
        ledger.remember(f"r{n}", EventKind.LOCKED, SENT)
    assert ledger.get("r0") is None
    assert ledger.get(f"r{ATTEMPTS_KEPT}") is not None
    ledger.forget("r1")
    ledger.forget("never-sent")
    assert ledger.get("r1") is None
