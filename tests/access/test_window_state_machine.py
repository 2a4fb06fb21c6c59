"""The window cache and command application, driven by hypothesis against a model of plain dicts.

The machine applies commands the way the engine does (compute the outcome, then ``put`` every
changed row), moves a fake clock and runs ``due`` as the engine's deadline loop would, and
records uses as a PoD would. The model is written from DESIGN.md section 3 and 4.1 alone:
a change applies only if its version is higher than the one held, a revoke wins a tie, a
revoke for an unknown window leaves a tombstone, task.complete revokes the live windows of a
task, a complete sync set revokes the live windows missing from it.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cloud_sync.protocol.b64 import b64url_encode
from cloud_sync.protocol.commands import COMMAND_ADAPTER, Command
from gateway.access.apply import Outcome, SyncPages, apply_command
from gateway.access.windows import TERMINAL, WindowCache, WindowState, state_at, with_state

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=60)
HUB = "hub-0001"
ULID = "01JNJ4Y2B3C4D5E6F7G8H9JKMN"
WINDOWS = ["w1", "w2", "w3", "w4"]
TASKS = ["task-1", "task-2"]
LOCKS = ["front-door", "back-door"]
# Three sealed codes: with two locks, several windows share a code hash now and then.
SEALED = [b64url_encode(bytes([n]) * 54) for n in range(3)]
# Times move in steps of 30 s, half the grace, so windows open and close on exact instants.
STEP = 30
LIVE = frozenset({WindowState.SCHEDULED, WindowState.ACTIVE})


def opener(sealed: str, window_id: str, lock_id: str) -> bytes:
    """A stand-in for HPKE open + keyed hash: deterministic and bound to the lock."""
    del window_id  # the real hash binds the lock and the code, not the window
    return hashlib.sha256(f"{lock_id}|{sealed}".encode()).digest()


def command(type_: str, body: dict[str, Any]) -> Command:
    """A validated command model, as the engine receives it after verification."""
    members = {
        "v": 1,
        "type": type_,
        "id": ULID,
        "hub_id": HUB,
        "seq": 1,
        "issued_at": START,
        "expires_at": START + timedelta(days=1),
        "body": body,
    }
    return COMMAND_ADAPTER.validate_python(members)


def upsert_body(
    window_id: str,
    version: int,
    *,
    task: str = "task-1",
    lock: str = "front-door",
    code: int = 0,
    starts_at: datetime = START,
    ends_at: datetime = START + timedelta(hours=1),
    max_uses: int | None = None,
    enforcement: str = "hub",
) -> dict[str, Any]:
    """A window.upsert body."""
    return {
        "window_id": window_id,
        "tenant_id": "tenant-a",
        "task_id": task,
        "lock_id": lock,
        "starts_at": starts_at,
        "ends_at": ends_at,
        "version": version,
        "max_uses": max_uses,
        "enforcement": enforcement,
        "code_sealed": SEALED[code],
    }


@dataclass
class Model:
    """What the spec says the hub holds for one window."""

    version: int
    tombstone: bool = True
    revoked: bool = True
    task: str = ""
    lock: str = ""
    code: bytes = b""
    starts_at: datetime = START
    ends_at: datetime = START
    max_uses: int | None = None
    uses: int = 0
    lock_enforced: bool = False

    def state(self, now: datetime) -> WindowState:
        """The state this window is in at ``now``."""
        if self.revoked:
            return WindowState.REVOKED
        if self.max_uses is not None and self.uses >= self.max_uses:
            return WindowState.USED
        if now >= self.ends_at + GRACE:
            return WindowState.EXPIRED
        if now >= self.starts_at - GRACE:
            return WindowState.ACTIVE
        return WindowState.SCHEDULED

    def deadline(self, now: datetime) -> datetime | None:
        """The next moment this window opens or closes; None once it is terminal."""
        state = self.state(now)
        if state is WindowState.SCHEDULED:
            return self.starts_at - GRACE
        if state is WindowState.ACTIVE:
            return self.ends_at + GRACE
        return None


class WindowMachine(RuleBasedStateMachine):
    """Commands, time and uses; the cache must agree with the model after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.cache = WindowCache(GRACE)
        self.pages = SyncPages()
        self.now = START
        self.model: dict[str, Model] = {}
        # The model of sync paging: the newest set version seen, its pages, whether it is done.
        self.set_version = 0
        self.set_pages: dict[int, list[dict[str, Any]]] = {}
        self.set_done = False
        # Completed tasks: their windows can never be revived by an upsert.
        self.completed: set[str] = set()

    # Applying, as the engine does.

    def apply(self, cmd: Command) -> Outcome:
        outcome = apply_command(cmd, self.cache, self.pages, opener, self.now)
        for change in outcome.changes:
            self.cache.put(change.row)
        if outcome.completed_task:
            self.cache.complete_task(outcome.completed_task, self.now)
        return outcome

    def apply_twice(self, cmd: Command) -> Outcome:
        """Apply ``cmd``, then check that applying it again changes nothing."""
        first = self.apply(cmd)
        before = {row.window_id: row for row in self.cache}
        again = self.apply(cmd)
        assert again.changes == []
        assert again.result == first.result
        assert {row.window_id: row for row in self.cache} == before
        return first

    # The model's rules.

    def model_upsert(self, body: dict[str, Any]) -> None:
        held = self.model.get(body["window_id"])
        if held is not None and body["version"] <= held.version:
            return
        model = self.model[body["window_id"]] = Model(
            version=body["version"],
            tombstone=False,
            revoked=False,
            task=body["task_id"],
            lock=body["lock_id"],
            code=opener(body["code_sealed"], body["window_id"], body["lock_id"]),
            starts_at=body["starts_at"],
            ends_at=body["ends_at"],
            max_uses=body["max_uses"],
            uses=held.uses if held is not None and not held.tombstone else 0,
            lock_enforced=body["enforcement"] != "hub",
        )
        if body["task_id"] in self.completed:
            # Overtaken by task.complete: stored revoked, code never opened.
            model.revoked, model.code, model.lock_enforced = True, b"", False

    def model_revoke_live(self, model: Model) -> None:
        if not model.tombstone and model.state(self.now) in LIVE:
            model.revoked = True

    # Rules.

    @rule(
        window_id=st.sampled_from(WINDOWS),
        version=st.integers(1, 5),
        task=st.sampled_from(TASKS),
        lock=st.sampled_from(LOCKS),
        code=st.integers(0, len(SEALED) - 1),
        start=st.integers(-20, 40),
        length=st.integers(1, 20),
        max_uses=st.sampled_from([None, 1, 2]),
        enforcement=st.sampled_from(["hub", "hub", "lock", "both"]),
    )
    def upsert(
        self,
        *,
        window_id: str,
        version: int,
        task: str,
        lock: str,
        code: int,
        start: int,
        length: int,
        max_uses: int | None,
        enforcement: str,
    ) -> None:
        starts_at = self.now + timedelta(seconds=start * STEP)
        body = upsert_body(
            window_id,
            version,
            task=task,
            lock=lock,
            code=code,
            starts_at=starts_at,
            ends_at=starts_at + timedelta(seconds=length * STEP),
            max_uses=max_uses,
            enforcement=enforcement,
        )
        outcome = self.apply_twice(command("window.upsert", body))
        assert outcome.result == "applied"
        self.model_upsert(body)

    @rule(window_id=st.sampled_from(WINDOWS), version=st.integers(1, 5))
    def revoke(self, window_id: str, version: int) -> None:
        body = {"window_id": window_id, "version": version, "reason": "cancelled"}
        self.apply_twice(command("window.revoke", body))
        held = self.model.get(window_id)
        if held is None:
            self.model[window_id] = Model(version=version)
        elif version >= held.version:
            held.version, held.revoked = version, True

    @rule(task=st.sampled_from(TASKS))
    def complete_task(self, task: str) -> None:
        self.apply_twice(command("task.complete", {"task_id": task}))
        self.completed.add(task)
        for model in self.model.values():
            if model.task == task:
                self.model_revoke_live(model)

    @rule(
        set_version=st.integers(1, 4),
        page=st.integers(1, 2),
        windows=st.lists(
            st.tuples(st.sampled_from(WINDOWS), st.integers(1, 5), st.sampled_from(TASKS)),
            max_size=3,
            unique_by=lambda w: w[0],
        ),
    )
    def sync_page(self, set_version: int, page: int, windows: list[tuple[str, int, str]]) -> None:
        bodies = [
            upsert_body(w, v, task=t, starts_at=self.now, ends_at=self.now + timedelta(hours=1))
            for w, v, t in windows
        ]
        body = {"set_version": set_version, "page": page, "pages": 2, "windows": bodies}
        self.apply_twice(command("windows.sync", body))
        self.model_sync_page(set_version, page, bodies)

    def model_sync_page(self, set_version: int, page: int, bodies: list[dict[str, Any]]) -> None:
        if set_version < self.set_version or (set_version == self.set_version and self.set_done):
            return
        if set_version > self.set_version:
            self.set_version, self.set_pages, self.set_done = set_version, {}, False
        self.set_pages[page] = bodies
        if len(self.set_pages) < 2:
            return
        self.set_done = True
        whole = [body for number in sorted(self.set_pages) for body in self.set_pages[number]]
        # A set names one state per window: its highest version (the first of equal ones).
        newest: dict[str, dict[str, Any]] = {}
        for body in whole:
            kept = newest.get(body["window_id"])
            if kept is None or body["version"] > kept["version"]:
                newest[body["window_id"]] = body
        for body in newest.values():
            self.model_upsert(body)
        wanted = {body["window_id"] for body in whole}
        for window_id, model in self.model.items():
            if window_id not in wanted:
                self.model_revoke_live(model)

    @rule(steps=st.integers(0, 12))
    def advance(self, steps: int) -> None:
        self.now += timedelta(seconds=steps * STEP)
        before = {row.window_id: row.state for row in self.cache}
        changes = self.cache.due(self.now)
        changed = [change.row.window_id for change in changes]
        assert len(changed) == len(set(changed))
        moved = {w for w, m in self.model.items() if m.state(self.now) != before[w]}
        assert set(changed) == moved
        for change in changes:
            expired = change.row.state == WindowState.EXPIRED
            assert change.status == ("expired" if expired else None)
            self.cache.put(change.row)

    @precondition(
        lambda self: any(m.state(self.now) is WindowState.ACTIVE for m in self.model.values())
    )
    @rule(data=st.data())
    def record_use(self, data: st.DataObject) -> None:
        active = sorted(w for w, m in self.model.items() if m.state(self.now) is WindowState.ACTIVE)
        window_id = data.draw(st.sampled_from(active))
        row = self.cache.get(window_id)
        assert row is not None
        row = replace(row, uses=row.uses + 1)
        self.cache.put(with_state(row, state_at(row, self.now, GRACE), self.now))
        self.model[window_id].uses += 1

    # Invariants.

    @invariant()
    def versions_are_the_highest_accepted(self) -> None:
        held = {row.window_id: row.version for row in self.cache}
        assert held == {w: m.version for w, m in self.model.items()}

    @invariant()
    def states_are_the_models(self) -> None:
        for row in self.cache:
            expected = self.model[row.window_id].state(self.now)
            assert state_at(row, self.now, GRACE) is expected
            # The deadline loop is caught up, so the stored state is the current one too.
            assert row.state == expected
            assert row.uses == self.model[row.window_id].uses

    @invariant()
    def tombstones_are_where_the_model_has_them(self) -> None:
        for row in self.cache:
            model = self.model[row.window_id]
            assert (row.origin == "tombstone") == model.tombstone
            if not model.tombstone:
                assert (row.task_id, row.lock_id) == (model.task, model.lock)
                assert (row.starts_at, row.ends_at) == (model.starts_at, model.ends_at)
                assert row.max_uses == model.max_uses
                # The sealed code is kept for the lock's keypad only while the window lives.
                live = model.state(self.now) not in TERMINAL
                assert (row.code_sealed is not None) == (model.lock_enforced and live)

    @invariant()
    def next_deadline_is_the_earliest_open_or_close(self) -> None:
        moments = [m.deadline(self.now) for m in self.model.values()]
        pending = [moment for moment in moments if moment is not None]
        expected = min(pending, default=None)
        assert self.cache.next_deadline() == expected
        assert expected is None or expected > self.now

    @invariant()
    def indexes_hold_exactly_the_models_windows(self) -> None:
        for lock, sealed in itertools.product(LOCKS, SEALED):
            digest = opener(sealed, "", lock)
            want = {w for w, m in self.model.items() if not m.tombstone and m.code == digest}
            assert {row.window_id for row in self.cache.by_code(digest)} == want
        for task in TASKS:
            want = {w for w, m in self.model.items() if not m.tombstone and m.task == task}
            assert {row.window_id for row in self.cache.by_task(task)} == want
        assert self.cache.by_code(b"") == []
        assert self.cache.by_task("") == []

    @invariant()
    def counts_add_up_to_the_cache(self) -> None:
        counts = self.cache.counts()
        assert sum(counts.values()) == len(self.cache) == len(self.model)
        for state in WindowState:
            want = sum(1 for m in self.model.values() if m.state(self.now) is state)
            assert counts[state.value] == want


WindowMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestWindowMachine = WindowMachine.TestCase


# Order: upserts and revokes reach the hub in any order, and the hub ends up the same.

CHANGES = st.lists(
    st.one_of(
        st.tuples(
            st.just("window.upsert"),
            st.sampled_from(WINDOWS[:2]),
            st.integers(1, 4),
            st.integers(-4, 4),
        ),
        st.tuples(st.just("window.revoke"), st.sampled_from(WINDOWS[:2]), st.integers(1, 4)),
    ),
    max_size=6,
)


def change_command(change: tuple[Any, ...]) -> Command:
    """The command one drawn change stands for."""
    if change[0] == "window.revoke":
        _, window_id, version = change
        return command("window.revoke", {"window_id": window_id, "version": version, "reason": "x"})
    _, window_id, version, start = change
    starts_at = START + timedelta(seconds=start * STEP)
    # The fields depend on the version only, as they do when one cloud issues them.
    body = upsert_body(
        window_id,
        version,
        code=version % len(SEALED),
        starts_at=starts_at,
        ends_at=starts_at + timedelta(seconds=version * STEP),
        max_uses=version % 3 or None,
    )
    return command("window.upsert", body)


def replay(commands: list[Command]) -> dict[str, Any]:
    """Apply ``commands`` in order to an empty cache; each window's version, state and fields."""
    cache = WindowCache(GRACE)
    pages = SyncPages()
    for cmd in commands:
        for change in apply_command(cmd, cache, pages, opener, START).changes:
            cache.put(change.row)
    # A revoked window's fields are whatever the hub last held; only its version counts.
    return {
        row.window_id: (row.version, row.state)
        if row.state == WindowState.REVOKED
        else replace(row, updated_at=START)
        for row in cache
    }


@given(changes=CHANGES, data=st.data())
@settings(max_examples=100, deadline=None)
def test_upserts_and_revokes_end_the_same_in_any_order(
    changes: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    # One cloud never sends two different bodies for the same window and version.
    unique = {change[:3]: change for change in changes}
    commands = [change_command(change) for change in unique.values()]
    shuffled = data.draw(st.permutations(commands))
    assert replay(shuffled) == replay(commands)


@given(
    first=st.tuples(st.just("window.upsert"), st.just("w1"), st.integers(1, 4), st.integers(-4, 4))
    | st.tuples(st.just("window.revoke"), st.just("w1"), st.integers(1, 4)),
    second=st.tuples(st.just("window.upsert"), st.just("w2"), st.integers(1, 4), st.integers(-4, 4))
    | st.tuples(st.just("window.revoke"), st.just("w2"), st.integers(1, 4)),
    held=CHANGES,
)
@settings(max_examples=100, deadline=None)
def test_two_commits_for_different_windows_commute_row_for_row(
    first: tuple[Any, ...], second: tuple[Any, ...], held: list[tuple[Any, ...]]
) -> None:
    base = [change_command(change) for change in held]
    a, b = change_command(first), change_command(second)
    cache_ab, cache_ba = WindowCache(GRACE), WindowCache(GRACE)
    for cache, order in ((cache_ab, [*base, a, b]), (cache_ba, [*base, b, a])):
        for cmd in order:
            for change in apply_command(cmd, cache, SyncPages(), opener, START).changes:
                cache.put(change.row)
    assert {r.window_id: r for r in cache_ab} == {r.window_id: r for r in cache_ba}
    assert cache_ab.next_deadline() == cache_ba.next_deadline()
