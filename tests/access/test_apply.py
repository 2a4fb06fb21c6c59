"""Applying window commands: versions, tombstones, the revoke tie, task.complete, sync pages."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cloud_sync.protocol.b64 import b64url_encode
from cloud_sync.protocol.commands import COMMAND_ADAPTER, Command, WindowsSync
from cloud_sync.protocol.errors import SealError
from gateway.access.apply import Outcome, SyncPages, apply_command, rejected
from gateway.access.windows import WindowCache, WindowState, held_back

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(minutes=5)
HUB = "hub-0001"
ULID = "01JNJ4Y2B3C4D5E6F7G8H9JKMN"
SEALED = b64url_encode(bytes(54))
UNREADABLE = b64url_encode(b"\xff" * 54)


def opener(sealed: str, window_id: str, lock_id: str) -> bytes:
    """Stands in for HPKE open + keyed hash; a sealed code of 0xff bytes does not open."""
    del window_id
    if sealed == UNREADABLE:
        raise SealError("not for this hub")
    return hashlib.sha256(f"{lock_id}|{sealed}".encode()).digest()


def command(type_: str, body: dict[str, Any]) -> Command:
    """A validated command model."""
    return COMMAND_ADAPTER.validate_python(
        {
            "v": 1,
            "type": type_,
            "id": ULID,
            "hub_id": HUB,
            "seq": 1,
            "issued_at": NOW,
            "expires_at": NOW + timedelta(days=1),
            "body": body,
        }
    )


def upsert_body(window_id: str = "w1", version: int = 1, **fields: Any) -> dict[str, Any]:
    """A window.upsert body, active at NOW."""
    return {
        "window_id": window_id,
        "tenant_id": "tenant-a",
        "task_id": "task-1",
        "lock_id": "front-door",
        "starts_at": NOW - timedelta(hours=1),
        "ends_at": NOW + timedelta(hours=1),
        "version": version,
        "max_uses": None,
        "enforcement": "hub",
        "code_sealed": SEALED,
        **fields,
    }


def upsert(window_id: str = "w1", version: int = 1, **fields: Any) -> Command:
    """A window.upsert command."""
    return command("window.upsert", upsert_body(window_id, version, **fields))


def revoke(window_id: str = "w1", version: int = 1) -> Command:
    """A window.revoke command."""
    return command("window.revoke", {"window_id": window_id, "version": version, "reason": "r"})


def sync(set_version: int, page: int, pages: int, *windows: dict[str, Any]) -> WindowsSync:
    """One windows.sync page."""
    body = {"set_version": set_version, "page": page, "pages": pages, "windows": list(windows)}
    cmd = command("windows.sync", body)
    assert isinstance(cmd, WindowsSync)
    return cmd


class Hub:
    """A cache and its sync pages, committed the way the engine commits."""

    def __init__(self) -> None:
        self.cache = WindowCache(GRACE)
        self.pages = SyncPages()

    def apply(self, cmd: Command, now: datetime = NOW) -> Outcome:
        outcome = apply_command(cmd, self.cache, self.pages, opener, now)
        for change in outcome.changes:
            self.cache.put(change.row)
        return outcome

    def held(self, window_id: str) -> tuple[int, str, str]:
        row = self.cache.get(window_id)
        assert row is not None
        return row.version, row.state, row.origin


# Upserts.


def test_a_new_window_is_applied_in_the_state_it_is_in_now() -> None:
    hub = Hub()
    outcome = hub.apply(upsert())
    assert (outcome.result, outcome.reason) == ("applied", None)
    [change] = outcome.changes
    assert (change.row.state, change.status) == (WindowState.ACTIVE, "applied")
    assert change.row.code_hash == opener(SEALED, "w1", "front-door")
    later = NOW + timedelta(days=1)
    scheduled = hub.apply(upsert("w2", starts_at=later, ends_at=later + timedelta(hours=1)))
    assert scheduled.changes[0].row.state == WindowState.SCHEDULED
    old = hub.apply(upsert("w3", starts_at=NOW - timedelta(days=1), ends_at=NOW - GRACE))
    assert old.changes[0].row.state == WindowState.EXPIRED


def test_a_window_that_arrives_over_reports_its_state_and_drops_its_sealed_code() -> None:
    hub = Hub()
    old = upsert(
        "w-old", enforcement="lock", starts_at=NOW - timedelta(days=1), ends_at=NOW - GRACE
    )
    [change] = hub.apply(old).changes
    assert (change.row.state, change.status, change.row.code_sealed) == (
        WindowState.EXPIRED,
        "expired",
        None,
    )
    # Where untrusted time may not decide the expiry, the change commits as it arrived: still
    # scheduled, the sealed code kept for the keypad, reported as applied.
    held = held_back(change)
    assert (held.row.state, held.status, held.row.code_sealed) == (
        WindowState.SCHEDULED,
        "applied",
        SEALED,
    )
    assert held.row.version == change.row.version


def test_an_upsert_at_the_held_version_or_older_changes_nothing() -> None:
    hub = Hub()
    hub.apply(upsert(version=3))
    for version in (3, 2, 1):
        outcome = hub.apply(upsert(version=version, task_id="task-9"))
        assert (outcome.result, outcome.reason, outcome.changes) == ("applied", "not_newer", [])
    assert hub.cache.by_task("task-9") == []


def test_a_newer_upsert_with_fewer_max_uses_than_already_used_makes_the_window_used() -> None:
    hub = Hub()
    hub.apply(upsert(max_uses=3))
    row = hub.cache.get("w1")
    assert row is not None
    hub.cache.put(replace(row, uses=2))
    [change] = hub.apply(upsert(version=2, max_uses=2)).changes
    assert (change.row.uses, change.row.state) == (2, WindowState.USED)


def test_an_unreadable_code_is_rejected_and_changes_nothing() -> None:
    hub = Hub()
    hub.apply(upsert())
    outcome = hub.apply(upsert(version=2, code_sealed=UNREADABLE))
    assert (outcome.result, outcome.reason, outcome.changes) == ("rejected", "code_unreadable", [])
    assert hub.held("w1") == (1, "active", "push")
    assert rejected("x") == Outcome("rejected", "x")


# Revokes and tombstones.


def test_a_revoke_for_an_unknown_window_leaves_a_tombstone() -> None:
    hub = Hub()
    [change] = hub.apply(revoke("ghost", 2)).changes
    assert change.status == "revoked"
    assert hub.held("ghost") == (2, "revoked", "tombstone")


def test_a_tombstone_refuses_older_and_equal_upserts_and_yields_to_a_newer_one() -> None:
    hub = Hub()
    hub.apply(revoke("w1", 2))
    for version in (1, 2):
        assert hub.apply(upsert(version=version)).reason == "not_newer"
        assert hub.held("w1") == (2, "revoked", "tombstone")
    # A higher version is a change the cloud made after the revoke: it applies.
    [change] = hub.apply(upsert(version=3)).changes
    assert (change.row.version, change.row.state, change.row.uses) == (3, "active", 0)
    assert hub.held("w1") == (3, "active", "push")


def test_a_revoke_wins_a_tie_with_the_version_it_names() -> None:
    hub = Hub()
    hub.apply(upsert(version=2))
    [change] = hub.apply(revoke(version=2)).changes
    assert (change.row.version, change.row.state, change.detail) == (2, "revoked", "r")
    assert hub.apply(revoke(version=2)).changes == []
    assert hub.apply(upsert(version=2)).reason == "not_newer"
    assert hub.held("w1") == (2, "revoked", "push")


def test_a_revoke_in_a_tie_arriving_before_the_upsert_still_wins() -> None:
    hub = Hub()
    hub.apply(revoke(version=2))
    hub.apply(upsert(version=2))
    assert hub.held("w1") == (2, "revoked", "tombstone")


def test_a_revoke_of_an_older_version_loses_to_the_newer_window_held() -> None:
    hub = Hub()
    hub.apply(upsert(version=3))
    outcome = hub.apply(revoke(version=2))
    assert (outcome.reason, outcome.changes) == ("not_newer", [])
    assert hub.held("w1") == (3, "active", "push")


def test_a_revoke_of_a_newer_version_takes_that_version_so_the_versions_between_stay_dead() -> None:
    hub = Hub()
    hub.apply(upsert(version=1))
    hub.apply(revoke(version=4))
    assert hub.held("w1") == (4, "revoked", "push")
    assert hub.apply(upsert(version=3)).reason == "not_newer"
    hub.apply(revoke("ghost", 1))
    hub.apply(revoke("ghost", 5))
    assert hub.held("ghost") == (5, "revoked", "tombstone")


def test_a_revoked_window_revived_by_a_newer_version_keeps_its_uses() -> None:
    hub = Hub()
    hub.apply(upsert(max_uses=2))
    row = hub.cache.get("w1")
    assert row is not None
    hub.cache.put(replace(row, uses=1))
    hub.apply(revoke(version=1))
    [change] = hub.apply(upsert(version=2, max_uses=2)).changes
    assert (change.row.uses, change.row.state) == (1, WindowState.ACTIVE)


# task.complete.


def test_task_complete_revokes_the_live_windows_of_the_task_only() -> None:
    hub = Hub()
    later = NOW + timedelta(days=1)
    hub.apply(upsert("live"))
    hub.apply(upsert("soon", starts_at=later, ends_at=later + timedelta(hours=1)))
    hub.apply(upsert("gone", starts_at=NOW - timedelta(days=1), ends_at=NOW - GRACE))
    hub.apply(upsert("other", task_id="task-2"))
    outcome = hub.apply(command("task.complete", {"task_id": "task-1"}))
    changed = {c.row.window_id: (c.row.version, c.status, c.detail) for c in outcome.changes}
    assert changed == {
        "live": (1, "revoked", "task_complete"),
        "soon": (1, "revoked", "task_complete"),
    }
    assert hub.held("gone")[1] == "expired"
    assert hub.held("other")[1] == "active"
    assert hub.apply(command("task.complete", {"task_id": "task-1"})).changes == []
    assert hub.apply(command("task.complete", {"task_id": "task-none"})).changes == []


# windows.sync.


def test_a_complete_sync_set_applies_its_windows_and_revokes_the_live_ones_missing_from_it() -> (
    None
):
    hub = Hub()
    hub.apply(upsert("keep"))
    hub.apply(upsert("drop"))
    hub.apply(upsert("gone", starts_at=NOW - timedelta(days=1), ends_at=NOW - GRACE))
    hub.apply(revoke("ghost", 1))
    outcome = hub.apply(sync(1, 1, 1, upsert_body("keep", 2), upsert_body("new")))
    assert (outcome.result, outcome.reason) == ("applied", None)
    changed = {c.row.window_id: (c.row.version, c.status, c.detail) for c in outcome.changes}
    assert changed == {
        "keep": (2, "applied", None),
        "new": (1, "applied", None),
        "drop": (1, "revoked", "not_in_sync_set"),
    }
    assert hub.held("gone")[1] == "expired"
    assert hub.held("ghost") == (1, "revoked", "tombstone")


def test_sync_pages_arriving_out_of_order_are_held_until_the_set_is_complete() -> None:
    hub = Hub()
    hub.apply(upsert("drop"))
    held = hub.apply(sync(1, 2, 2, upsert_body("b")))
    assert (held.reason, held.changes) == ("page_held", [])
    assert hub.held("drop")[1] == "active"
    done = hub.apply(sync(1, 1, 2, upsert_body("a")))
    assert {c.row.window_id: c.status for c in done.changes} == {
        "a": "applied",
        "b": "applied",
        "drop": "revoked",
    }


def test_a_page_of_an_older_set_is_ignored_while_a_newer_set_is_collected() -> None:
    hub = Hub()
    hub.apply(sync(2, 1, 2, upsert_body("a")))
    stale = hub.apply(sync(1, 2, 2, upsert_body("z")))
    assert (stale.reason, stale.changes) == ("not_newer", [])
    done = hub.apply(sync(2, 2, 2, upsert_body("b")))
    assert {c.row.window_id for c in done.changes} == {"a", "b"}


def test_a_newer_set_version_restarts_collection_and_drops_the_older_sets_pages() -> None:
    hub = Hub()
    hub.apply(sync(1, 1, 2, upsert_body("old")))
    assert hub.apply(sync(2, 1, 3, upsert_body("a"))).reason == "page_held"
    assert hub.apply(sync(2, 2, 3, upsert_body("b"))).reason == "page_held"
    done = hub.apply(sync(2, 3, 3, upsert_body("c")))
    assert {c.row.window_id for c in done.changes} == {"a", "b", "c"}
    assert hub.cache.get("old") is None


def test_a_repeated_page_of_a_reconciled_set_does_not_revoke_windows_pushed_since() -> None:
    hub = Hub()
    hub.apply(sync(1, 1, 2, upsert_body("a")))
    hub.apply(sync(1, 2, 2, upsert_body("b")))
    hub.apply(upsert("pushed-since"))
    for page in (1, 2, 1):
        again = hub.apply(sync(1, page, 2, upsert_body("a" if page == 1 else "b")))
        assert (again.reason, again.changes) == ("not_newer", [])
    assert hub.held("pushed-since")[1] == "active"
    assert hub.held("b")[1] == "active"


def test_a_window_listed_twice_in_a_set_takes_its_newest_version() -> None:
    hub = Hub()
    outcome = hub.apply(
        sync(1, 1, 2, upsert_body("a", 3, task_id="task-3"), upsert_body("a", 3, task_id="x"))
    )
    assert outcome.reason == "page_held"
    outcome = hub.apply(sync(1, 2, 2, upsert_body("a", 2)))
    assert [(c.row.window_id, c.row.version) for c in outcome.changes] == [("a", 3)]
    assert hub.held("a") == (3, "active", "push")
    assert [w.window_id for w in hub.cache.by_task("task-3")] == ["a"]


def test_a_set_with_an_unreadable_code_applies_the_rest_and_keeps_that_window() -> None:
    hub = Hub()
    hub.apply(upsert("bad"))
    outcome = hub.apply(
        sync(1, 1, 1, upsert_body("bad", 2, code_sealed=UNREADABLE), upsert_body("good"))
    )
    assert (outcome.result, outcome.reason) == ("applied", "some_codes_unreadable")
    assert [c.row.window_id for c in outcome.changes] == ["good"]
    assert hub.held("bad") == (1, "active", "push")


def test_sync_pages_hand_back_nothing_for_a_stale_page() -> None:
    pages = SyncPages()
    assert pages.add(sync(2, 1, 1)) == []
    assert pages.add(sync(1, 1, 1, upsert_body("a"))) is None
    assert pages.add(sync(2, 1, 1, upsert_body("a"))) is None
    assert pages.stale(2)
    assert not pages.stale(3)


def test_an_upsert_overtaken_by_task_complete_is_stored_revoked_and_its_code_never_opened() -> None:
    cache, pages = WindowCache(timedelta(0)), SyncPages()
    done = apply_command(command("task.complete", {"task_id": "task-1"}), cache, pages, opener, NOW)
    assert done.completed_task == "task-1"
    cache.complete_task("task-1", NOW)
    opened: list[str] = []

    def counting_opener(sealed: str, window_id: str, lock_id: str) -> bytes:
        opened.append(window_id)
        return opener(sealed, window_id, lock_id)

    late = upsert("w9", 3, task_id="task-1")
    outcome = apply_command(late, cache, pages, counting_opener, NOW)
    assert (outcome.result, outcome.reason) == ("applied", "task_complete")
    (change,) = outcome.changes
    assert (change.row.state, change.status, change.row.code_hash) == ("revoked", "revoked", b"")
    assert opened == []
    cache.put(change.row)
    assert apply_command(late, cache, pages, counting_opener, NOW).changes == []
