"""A window that is over: it reports its state in a ``window.status``, and its sealed code goes.

The sealed code is read straight from the SQLite file, so no cache or store code stands
between the test and what is on disk.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync import protocol as p
from cloud_sync.protocol.envelope import Signer
from gateway.store import MIGRATIONS, Store
from gateway.testing import DEFAULT_START

from .harness import HubHarness, running_hub
from .test_offline_e2e import bodies

LOCK = "parcel-room"  # the simulated lock with a 3-slot keypad


def on_disk(tmp_path: Path, window_id: str) -> tuple[str, str | None]:
    """(state, code_sealed) of a window as the hub's SQLite file holds it."""
    with closing(sqlite3.connect(tmp_path / "state" / "hub.db")) as db:
        row = db.execute(
            "SELECT state, code_sealed FROM windows WHERE window_id = ?", (window_id,)
        ).fetchone()
    assert row is not None, window_id
    return row[0], row[1]


def statuses(records: list[dict[str, Any]], window_id: str) -> list[tuple[object, object]]:
    return [
        (b["status"], b["version"])
        for b in bodies(records, "window.status")
        if b["window_id"] == window_id
    ]


def keypad_window(hub: HubHarness, window_id: str, code: str, **changes: Any) -> bytes:
    return hub.command("window.upsert", hub.upsert(window_id, code, lock_id=LOCK, **changes))


def later(hub: HubHarness, hours: int = 1) -> dict[str, str]:
    start = hub.clock.now() + timedelta(hours=hours)
    return {"starts_at": p.rfc3339(start), "ends_at": p.rfc3339(start + timedelta(hours=1))}


async def test_revoke_task_complete_and_sync_drop_the_sealed_code_of_a_window_not_yet_open(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        for window_id, code, task in (
            ("w-rev", "24682468", "t-1"),
            ("w-task", "35793579", "t-2"),
            ("w-sync", "46814681", "t-3"),
            ("w-kept", "57925792", "t-4"),
        ):
            upsert = keypad_window(
                hub, window_id, code, enforcement="lock", task_id=task, **later(hub)
            )
            await hub.send(upsert)
        await hub.quiet()
        for window_id in ("w-rev", "w-task", "w-sync"):
            state, sealed = on_disk(tmp_path, window_id)  # kept to program the keypad later
            assert (state, sealed is not None) == ("scheduled", True)

        await hub.send(
            hub.command("window.revoke", {"window_id": "w-rev", "version": 1, "reason": "x"})
        )
        await hub.send(hub.command("task.complete", {"task_id": "t-2"}))
        kept = hub.upsert(
            "w-kept", "57925792", lock_id=LOCK, enforcement="lock", task_id="t-4", **later(hub)
        )
        sync = {"set_version": 1, "page": 1, "pages": 1, "windows": [kept]}
        await hub.send(hub.command("windows.sync", sync))
        await hub.quiet()

        for window_id in ("w-rev", "w-task", "w-sync"):
            assert on_disk(tmp_path, window_id) == ("revoked", None)
            row = hub.hub.engine.cache.get(window_id)
            assert row is not None
            assert row.code_sealed is None
        state, sealed = on_disk(tmp_path, "w-kept")
        assert (state, sealed is not None) == ("scheduled", True)


async def test_expiry_drops_the_sealed_code_of_a_window_the_keypad_never_took(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        for n in range(3):  # fill the keypad's three slots
            await hub.send(keypad_window(hub, f"w-{n}", f"1111222{n}", enforcement="lock"))
            await hub.quiet()
        await hub.send(keypad_window(hub, "w-x", "98765432", enforcement="lock"))
        await hub.quiet()
        assert len(hub.sim(LOCK).keypad_codes()) == 3
        await hub.advance(2 * 3600)
        assert on_disk(tmp_path, "w-x") == ("expired", None)
        assert ("expired", 1) in statuses(await hub.records(), "w-x")


async def test_a_window_used_up_at_the_hub_drops_its_sealed_code(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        for n in range(3):  # the keypad is full, so the "both" window keeps its sealed code
            await hub.send(keypad_window(hub, f"w-{n}", f"1111222{n}", enforcement="lock"))
            await hub.quiet()
        await hub.send(keypad_window(hub, "w-both", "86428642", enforcement="both", max_uses=1))
        await hub.quiet()
        assert (await hub.unlock(LOCK, code="86428642"))[0] == 200
        await hub.quiet()
        assert on_disk(tmp_path, "w-both") == ("used", None)
        assert statuses(await hub.records(), "w-both")[-1] == ("used", 1)


async def test_an_upsert_that_arrives_over_reports_its_state_and_keeps_no_sealed_code(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        now = hub.clock.now()
        past = {
            "starts_at": p.rfc3339(now - timedelta(hours=3)),
            "ends_at": p.rfc3339(now - timedelta(hours=2)),
        }
        await hub.send(keypad_window(hub, "w-old", "55667788", enforcement="lock", **past))
        # Used once at version 1; version 2 allows one use only: it arrives used up.
        await hub.send(hub.command("window.upsert", hub.upsert("w-once", "66778899")))
        assert (await hub.unlock("front-door", code="66778899"))[0] == 200
        v2 = hub.upsert("w-once", "66778899", version=2, max_uses=1)
        await hub.send(hub.command("window.upsert", v2))
        await hub.quiet()

        records = await hub.records()
        assert statuses(records, "w-old") == [("expired", 1)]
        assert statuses(records, "w-once") == [("applied", 1), ("used", 2)]
        assert on_disk(tmp_path, "w-old") == ("expired", None)
        assert on_disk(tmp_path, "w-once") == ("used", None)
        assert hub.sim(LOCK).keypad_codes() == {}


async def test_a_token_window_reports_used_and_can_be_revoked_by_its_task(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        once = hub.token("win-tok", max=1)
        assert (await hub.unlock("front-door", token=once))[0] == 200
        many = hub.token("win-many", max=None)
        assert (await hub.unlock("front-door", token=many))[0] == 200
        # A window known only from a token holds version 0; the protocol's versions start at 1.
        status, results = await hub.send(hub.command("task.complete", {"task_id": "task-win-many"}))
        assert (status, results[0]["result"]) == (200, "applied")
        assert await hub.unlock("front-door", token=many) == (403, {"error": "denied"})

        records = await hub.records()
        assert statuses(records, "win-tok") == [("used", 1)]
        assert statuses(records, "win-many") == [("revoked", 1)]


async def test_the_migration_drops_sealed_codes_of_windows_already_over(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    with closing(sqlite3.connect(path)) as db:
        for version, step in enumerate(MIGRATIONS[:3], start=1):
            db.executescript(f"BEGIN;\n{step}\nPRAGMA user_version = {version};\nCOMMIT;")
        for window_id, state in [
            ("w-a", "active"),
            ("w-e", "expired"),
            ("w-u", "used"),
            ("w-r", "revoked"),
            ("w-s", "scheduled"),
        ]:
            db.execute(
                "INSERT INTO windows (window_id, tenant_id, task_id, lock_id, starts_at, ends_at,"
                " version, enforcement, state, code_hash, code_sealed, updated_at)"
                " VALUES (?, 't', 'k', 'l', 'a', 'b', 1, 'lock', ?, x'00', 'sealed', 'c')",
                (window_id, state),
            )
        db.commit()
    signer = Signer("hub-test", Ed25519PrivateKey.generate())
    store = await Store.open(path, signer=signer, hub_id="hub-test", now=lambda: DEFAULT_START)
    await store.close()
    with closing(sqlite3.connect(path)) as db:
        rows = dict(db.execute("SELECT window_id, code_sealed FROM windows").fetchall())
        version = db.execute("PRAGMA user_version").fetchone()[0]
    assert version == len(MIGRATIONS)
    assert rows == {"w-a": "sealed", "w-s": "sealed", "w-e": None, "w-u": None, "w-r": None}
