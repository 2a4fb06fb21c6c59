"""Tokens against what no window row says: completed tasks, complete sync sets, lock-only windows.

The sync mark and the completed tasks come from real ``apply_command`` runs over a real
``WindowCache``, the way the engine commits them; tokens are signed and verified for real.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync.protocol.commands import COMMAND_ADAPTER, Command
from cloud_sync.protocol.envelope import Signer
from cloud_sync.protocol.ids import new_ulid
from cloud_sync.protocol.tokens import CourierTokenClaims, issue_courier_token
from gateway.access.apply import SYNC_MARK_KEY, SyncMark, SyncPages, apply_command
from gateway.access.decide import (
    SYNC_SNAPSHOT_MARGIN,
    Context,
    Grant,
    Refusal,
    decide_token,
    minted_ms,
)
from gateway.access.windows import WindowCache

from .harness import running_hub
from .test_apply import UNREADABLE, opener, upsert_body

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=5)
HUB = "hub-0001"
LOCK = "front-door"
CLOUD = Signer("cloud-1", Ed25519PrivateKey.from_private_bytes(bytes(32)))
KEYS = {CLOUD.kid: CLOUD.key.public_key()}


def command(type_: str, body: dict[str, Any], issued_at: datetime = NOW) -> Command:
    return COMMAND_ADAPTER.validate_python(
        {
            "v": 1,
            "type": type_,
            "id": new_ulid(),
            "hub_id": HUB,
            "seq": 1,
            "issued_at": issued_at,
            "expires_at": issued_at + timedelta(days=1),
            "body": body,
        }
    )


def token(window_id: str, minted: datetime, *, task: str = "task-1", lock: str = LOCK) -> str:
    """A token for ``window_id`` minted at ``minted`` (its jti's time), valid around NOW."""
    claims = {
        "v": 1,
        "jti": new_ulid(int(minted.timestamp() * 1000)),
        "aud": HUB,
        "sub": "courier-7",
        "win": window_id,
        "lock": lock,
        "ten": "tenant-a",
        "task": task,
        "nbf": int((NOW - timedelta(hours=1)).timestamp()),
        "exp": int((NOW + timedelta(hours=2)).timestamp()),
        "max": None,
    }
    return issue_courier_token(CourierTokenClaims.model_validate(claims), CLOUD)


class Hub:
    """A window cache and sync pages, committed as the engine commits them."""

    def __init__(self) -> None:
        self.cache = WindowCache(GRACE)
        self.pages = SyncPages()

    def apply(self, cmd: Command) -> dict[str, str | None]:
        outcome = apply_command(cmd, self.cache, self.pages, opener, NOW)
        for change in outcome.changes:
            self.cache.put(change.row)
        if outcome.completed_task:
            self.cache.complete_task(outcome.completed_task, NOW)
        return outcome.kv

    def decide(self, tok: str, lock_id: str = LOCK) -> Grant | Refusal:
        return decide_token(
            tok,
            lock_id,
            hub_id=HUB,
            keys=KEYS,
            held_for=self.cache.get,
            ctx=Context(NOW, GRACE, {}),
            completed=self.cache.task_completed,
            sync_mark=self.pages.mark,
        )


def reason(decision: Grant | Refusal) -> str:
    assert isinstance(decision, Refusal), decision
    return decision.reason


def claims_with(jti: str) -> CourierTokenClaims:
    return CourierTokenClaims.model_validate(
        {
            "v": 1,
            "jti": jti,
            "aud": HUB,
            "sub": "c",
            "win": "w",
            "lock": LOCK,
            "ten": "t",
            "task": "k",
            "nbf": 0,
            "exp": 60,
            "max": None,
        }
    )


def test_minted_ms_reads_the_time_in_the_tokens_jti_whatever_it_is() -> None:
    moment = datetime(2026, 3, 1, 11, 59, 58, 123000, tzinfo=UTC)
    millis = int(moment.timestamp() * 1000)
    assert minted_ms(claims_with(new_ulid(millis))) == millis
    assert minted_ms(claims_with("0" * 26)) == 0
    # The largest ULID time lies past the year 9999: a number, not a datetime, holds it.
    assert minted_ms(claims_with("7" + "Z" * 25)) == 2**48 - 1


def test_a_token_minted_at_the_end_of_ulid_time_is_not_judged_by_an_older_set() -> None:
    hub = Hub()
    hub.apply(command("windows.sync", {"set_version": 1, "page": 1, "pages": 1, "windows": []}))
    tok = issue_courier_token(
        claims_with("7" + "Z" * 25).model_copy(
            update={
                "win": "w-far",
                "nbf": int((NOW - timedelta(hours=1)).timestamp()),
                "exp": int((NOW + timedelta(hours=1)).timestamp()),
            }
        ),
        CLOUD,
    )
    assert isinstance(hub.decide(tok), Grant)


def test_a_token_of_a_completed_task_is_revoked_though_its_window_never_reached_the_hub() -> None:
    hub = Hub()
    tok = token("win-t", NOW - timedelta(minutes=10))
    assert isinstance(hub.decide(tok), Grant)
    hub.apply(command("task.complete", {"task_id": "task-1"}))
    assert reason(hub.decide(tok)) == "revoked"
    # Another task's token is untouched.
    assert isinstance(hub.decide(token("win-u", NOW, task="task-2")), Grant)


def test_a_complete_sync_revokes_older_tokens_of_windows_it_does_not_name() -> None:
    hub = Hub()
    synced_at = NOW - timedelta(minutes=30)
    kept = upsert_body("w-kept", task_id="task-9")
    broken = upsert_body("w-broken", task_id="task-9", code_sealed=UNREADABLE)
    sync = {"set_version": 7, "page": 1, "pages": 1, "windows": [kept, broken]}
    kv = hub.apply(command("windows.sync", sync, issued_at=synced_at))
    mark = hub.pages.mark
    assert mark == SyncMark(7, synced_at, frozenset({"w-broken"}))
    assert kv == {SYNC_MARK_KEY: mark.dump()}

    before = synced_at - SYNC_SNAPSHOT_MARGIN - timedelta(seconds=1)
    # Minted before the set and missing from it: the cloud had revoked or ended it by then.
    assert reason(hub.decide(token("w-absent", before))) == "revoked"
    # Minted after the set (or within the margin before it): newer than the set, so it opens.
    assert isinstance(hub.decide(token("w-absent", synced_at + timedelta(seconds=1))), Grant)
    assert isinstance(hub.decide(token("w-absent", synced_at - SYNC_SNAPSHOT_MARGIN)), Grant)
    # Named by the set but its code did not open: the token stands for it.
    assert isinstance(hub.decide(token("w-broken", before)), Grant)
    # Named by the set and held: the held row decides.
    assert isinstance(hub.decide(token("w-kept", before, task="task-9")), Grant)


def test_a_later_complete_set_moves_the_mark_and_an_older_one_does_not() -> None:
    hub = Hub()
    first = {"set_version": 3, "page": 1, "pages": 1, "windows": []}
    hub.apply(command("windows.sync", first, issued_at=NOW - timedelta(hours=2)))
    later = {"set_version": 4, "page": 1, "pages": 1, "windows": []}
    hub.apply(command("windows.sync", later, issued_at=NOW - timedelta(hours=1)))
    assert hub.pages.mark == SyncMark(4, NOW - timedelta(hours=1))
    # A set issued before the one remembered (a larger set_version signed by a slow worker)
    # reconciles, but it is no evidence against tokens minted since the remembered one.
    slow = {"set_version": 5, "page": 1, "pages": 1, "windows": []}
    kv = hub.apply(command("windows.sync", slow, issued_at=NOW - timedelta(hours=3)))
    assert hub.pages.mark == SyncMark(4, NOW - timedelta(hours=1))
    assert kv == {}


def test_the_mark_is_taken_from_the_earliest_page_of_the_set() -> None:
    hub = Hub()
    page1 = {"set_version": 2, "page": 1, "pages": 2, "windows": []}
    page2 = {"set_version": 2, "page": 2, "pages": 2, "windows": []}
    hub.apply(command("windows.sync", page2, issued_at=NOW - timedelta(minutes=20)))
    assert hub.pages.mark is None  # incomplete
    hub.apply(command("windows.sync", page1, issued_at=NOW - timedelta(minutes=40)))
    assert hub.pages.mark == SyncMark(2, NOW - timedelta(minutes=40))


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "{",
        "[]",
        '{"set_version": 1}',
        '{"set_version":1,"issued_at":"x","unapplied":[]}',
        '{"set_version":1,"issued_at":"2026-03-01T12:00:00","unapplied":[]}',
    ],
    ids=["none", "empty", "truncated", "list", "partial", "bad-time", "naive-time"],
)
def test_an_absent_or_unreadable_mark_is_none(text: str | None) -> None:
    assert SyncMark.load(text) is None


def test_a_mark_survives_its_kv_round_trip() -> None:
    mark = SyncMark(9, NOW, frozenset({"a", "b"}))
    assert SyncMark.load(mark.dump()) == mark


@pytest.mark.parametrize(("enforcement", "opens"), [("hub", True), ("both", True), ("lock", False)])
def test_a_token_never_opens_a_lock_only_window_through_the_hub(
    enforcement: str, opens: bool
) -> None:
    hub = Hub()
    hub.apply(command("window.upsert", upsert_body("w-1", enforcement=enforcement)))
    decision = hub.decide(token("w-1", NOW))
    assert isinstance(decision, Grant) is opens
    if not opens:
        assert reason(decision) == "no_match"


async def test_a_lock_only_window_refuses_its_token_at_the_local_api(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        body = hub.upsert("win-lo", "24682468", lock_id="parcel-room", enforcement="lock")
        await hub.send(hub.command("window.upsert", body))
        await hub.quiet()
        token = hub.token("win-lo", lock_id="parcel-room")
        assert await hub.unlock("parcel-room", token=token) == (403, {"error": "denied"})
        assert hub.sim("parcel-room").press("24682468")  # the keypad is its way in
        denied = [r["body"] for r in await hub.records() if r["type"] == "access.denied"]
        assert [(d["credential"], d["reason"]) for d in denied] == [("token", "no_match")]
