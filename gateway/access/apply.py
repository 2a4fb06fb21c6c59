"""Applying window commands: what each verified command changes, computed without side effects.

The caller commits the returned rows and records in one transaction and only then puts the
rows into the cache, so a failed commit leaves both exactly as they were.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog

from cloud_sync.protocol.commands import (
    TaskComplete,
    WindowRevoke,
    WindowsSync,
    WindowUpsert,
    WindowUpsertBody,
)
from cloud_sync.protocol.errors import ProtocolError
from cloud_sync.protocol.messages import Command

from ..store import WindowRow
from .windows import (
    STATUS_OF,
    TERMINAL,
    Change,
    WindowCache,
    WindowState,
    row_from_upsert,
    state_at,
    tombstone,
    with_state,
)

log = structlog.get_logger(__name__)

# Opens a sealed code and returns its keyed hash: (code_sealed, window_id, lock_id) -> hash.
CodeOpener = Callable[[str, str, str], bytes]
# A sync set may arrive in pages; pages of older set versions are dropped. Sets larger than
# this many pages are refused (the protocol caps pages at 100 windows each).
MAX_SYNC_PAGES_HELD = 10_000
# Where the last complete windows.sync is remembered (kv), so that it outlives a restart.
SYNC_MARK_KEY = "access.sync_mark"


@dataclass(frozen=True, slots=True)
class SyncMark:
    """The last complete ``windows.sync``: when the cloud issued it, and the windows it named
    whose upsert the hub could not apply (their code did not open): a token may stand for them.

    Every other window missing from the cache was missing from the cloud's complete desired
    set at ``issued_at``: revoked or ended by then (``decide.token_refusal``).
    """

    set_version: int
    issued_at: datetime
    unapplied: frozenset[str] = frozenset()

    def dump(self) -> str:
        """The kv value for this mark."""
        return json.dumps(
            {
                "set_version": self.set_version,
                "issued_at": self.issued_at.isoformat(),
                "unapplied": sorted(self.unapplied),
            },
            separators=(",", ":"),
        )

    @classmethod
    def load(cls, text: str | None) -> SyncMark | None:
        """The mark stored as ``text``; None when there is none or it cannot be read.

        An unreadable value is logged and ignored rather than refusing to start: the mark only
        narrows which tokens pass, and the next complete sync writes a new one.
        """
        if text is None:
            return None
        try:
            value = json.loads(text)
            issued_at = datetime.fromisoformat(value["issued_at"])
            unapplied = frozenset(str(window_id) for window_id in value["unapplied"])
            mark = cls(int(value["set_version"]), issued_at, unapplied)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("access.sync_mark_unreadable", error=type(exc).__name__)
            return None
        if issued_at.tzinfo is None:
            log.warning("access.sync_mark_unreadable", error="naive issued_at")
            return None
        return mark


@dataclass(slots=True)
class Outcome:
    """What a command did: ``applied`` or ``rejected`` (+ reason) and the window changes."""

    result: str
    reason: str | None = None
    changes: list[Change] = field(default_factory=list)
    # A task.complete to remember, so that a late upsert of its windows cannot revive them.
    completed_task: str | None = None
    # kv entries to commit with the command's effects (None deletes the key).
    kv: dict[str, str | None] = field(default_factory=dict)


def rejected(reason: str) -> Outcome:
    """An outcome that changed nothing."""
    return Outcome("rejected", reason)


def _upsert(
    cache: WindowCache, body: WindowUpsertBody, opener: CodeOpener, now: datetime
) -> Outcome:
    held = cache.get(body.window_id)
    if held is not None and held.version >= body.version:
        # Already at this version or newer: applying again changes nothing (idempotent).
        return Outcome("applied", "not_newer")
    if cache.task_completed(body.task_id):
        # Overtaken by task.complete: the window is stored revoked, as it would be had the
        # upsert arrived first, and its code is never opened.
        row = replace(row_from_upsert(body, b"", held, now), code_sealed=None, lock_side="none")
        dead = replace(row, state=WindowState.REVOKED)
        return Outcome(
            "applied", "task_complete", changes=[Change(dead, "revoked", "task_complete")]
        )
    try:
        code_hash = opener(body.code_sealed, body.window_id, body.lock_id)
    except ProtocolError:
        return rejected("code_unreadable")
    row = row_from_upsert(body, code_hash, held, now)
    state = state_at(row, now, cache.grace)
    # A window that arrives already over (expired, or used up by the uses carried over)
    # reports that state rather than a bare "applied".
    status = STATUS_OF.get(state, "applied")
    change = Change(with_state(row, state, now), status, unsettled=row)
    return Outcome("applied", changes=[change])


def _revoke_row(row: WindowRow, version: int, now: datetime, reason: str) -> Change:
    revoked = with_state(replace(row, version=version), WindowState.REVOKED, now)
    return Change(revoked, "revoked", reason)


def _revoke(
    cache: WindowCache, window_id: str, version: int, reason: str, now: datetime
) -> Outcome:
    held = cache.get(window_id)
    if held is None:
        return Outcome("applied", changes=[Change(tombstone(window_id, version, now), "revoked")])
    # A revoke names the version it revokes: it wins over that version (the cloud need not
    # bump the version to revoke) and loses to a newer one already held.
    if held.version > version or (held.version == version and held.state == WindowState.REVOKED):
        return Outcome("applied", "not_newer")
    # A used or expired window is revoked too: the end state must not depend on whether the
    # revoke or the upsert arrived first (a PoD already written stands either way).
    return Outcome("applied", changes=[_revoke_row(held, version, now, reason)])


def _live(row: WindowRow) -> bool:
    """True for a window not ended as committed (the one task.complete and sync revoke)."""
    # The committed state, not the time: untrusted time may only make a window seem over, and
    # left unrevoked it would work again once trust returns. A window whose end passed but is
    # not committed yet (held for trust, or the deadline loop's next pass) is revoked rather
    # than expired: terminal either way.
    return row.origin != "tombstone" and WindowState(row.state) not in TERMINAL


def _complete_task(cache: WindowCache, task_id: str, now: datetime) -> Outcome:
    changes = [
        _revoke_row(row, row.version, now, "task_complete")
        for row in cache.by_task(task_id)
        if _live(row)
    ]
    return Outcome("applied", changes=changes, completed_task=task_id)


@dataclass
class SyncPages:
    """Pages of a ``windows.sync`` set collected until the set is complete."""

    set_version: int = 0
    pages: int = 0
    bodies: dict[int, list[WindowUpsertBody]] = field(default_factory=dict)
    # Set once ``set_version`` was reconciled: a late or repeated page of it must not
    # reconcile it again, which would revoke windows pushed since.
    done: bool = False
    # The earliest issued_at among the pages of ``set_version`` collected so far.
    issued_at: datetime | None = None
    # The last complete set reconciled (persisted under SYNC_MARK_KEY).
    mark: SyncMark | None = None

    def stale(self, set_version: int) -> bool:
        """True for a page of an older set, or of the set already reconciled."""
        return set_version < self.set_version or (set_version == self.set_version and self.done)

    def add(self, sync: WindowsSync) -> list[WindowUpsertBody] | None:
        """Keep a page; return the whole set once every page of it has arrived."""
        body = sync.body
        if self.stale(body.set_version):
            return None
        if body.set_version > self.set_version:
            self.set_version, self.pages, self.bodies = body.set_version, body.pages, {}
            self.done, self.issued_at = False, None
        self.bodies[body.page] = list(body.windows)
        if self.issued_at is None or sync.issued_at < self.issued_at:
            self.issued_at = sync.issued_at
        if len(self.bodies) < self.pages:
            return None
        whole = [window for page in sorted(self.bodies) for window in self.bodies[page]]
        self.bodies, self.done = {}, True
        return whole


def _newest(bodies: list[WindowUpsertBody]) -> list[WindowUpsertBody]:
    """One body per window, the highest version (the first of equals), in first-seen order."""
    newest: dict[str, WindowUpsertBody] = {}
    for body in bodies:
        kept = newest.get(body.window_id)
        if kept is None or body.version > kept.version:
            newest[body.window_id] = body
    return list(newest.values())


def _sync(
    cache: WindowCache, pages: SyncPages, sync: WindowsSync, opener: CodeOpener, now: datetime
) -> Outcome:
    if pages.stale(sync.body.set_version):
        return Outcome("applied", "not_newer")
    whole = pages.add(sync)
    if whole is None:
        return Outcome("applied", "page_held")
    outcome = Outcome("applied")
    failed = []
    # Each body is checked against the rows held before the set, so a window listed twice
    # would yield two changes, the last put winning even if older: keep the newest only.
    for body in _newest(whole):
        one = _upsert(cache, body, opener, now)
        outcome.changes.extend(one.changes)
        if one.result == "rejected":
            failed.append(body.window_id)
    wanted = {body.window_id for body in whole}
    outcome.changes.extend(
        _revoke_row(row, row.version, now, "not_in_sync_set")
        for row in cache
        if row.window_id not in wanted and _live(row)
    )
    if failed:
        outcome.reason = "some_codes_unreadable"
    _mark(pages, outcome, frozenset(failed))
    return outcome


def _mark(pages: SyncPages, outcome: Outcome, unapplied: frozenset[str]) -> None:
    """Remember the set just reconciled, unless a set issued later is remembered already."""
    assert pages.issued_at is not None  # noqa: S101 - a complete set has at least one page
    mark = SyncMark(pages.set_version, pages.issued_at, unapplied)
    if pages.mark is None or mark.issued_at > pages.mark.issued_at:
        pages.mark = mark
        outcome.kv[SYNC_MARK_KEY] = mark.dump()


def apply_command(
    command: Command,
    cache: WindowCache,
    pages: SyncPages,
    opener: CodeOpener,
    now: datetime,
) -> Outcome:
    """Compute what a verified, accepted command changes; mutate nothing but sync pages."""
    if isinstance(command, WindowUpsert):
        return _upsert(cache, command.body, opener, now)
    if isinstance(command, WindowRevoke):
        body = command.body
        return _revoke(cache, body.window_id, body.version, body.reason, now)
    if isinstance(command, TaskComplete):
        return _complete_task(cache, command.body.task_id, now)
    return _sync(cache, pages, command, opener, now)
