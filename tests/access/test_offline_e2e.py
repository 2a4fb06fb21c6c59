"""The hub with no network: signed commands in, courier codes and tokens at the door, PoD out."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from cloud_sync import protocol as p

from .harness import HubHarness, running_hub

DENIED = {"error": "denied"}


def of_type(records: list[dict[str, object]], type_: str) -> list[dict[str, object]]:
    return [r for r in records if r["type"] == type_]


def bodies(records: list[dict[str, object]], type_: str) -> list[dict[str, object]]:
    return [r["body"] for r in of_type(records, type_)]  # type: ignore[misc]


async def test_a_code_opens_the_door_only_inside_its_window(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        start = hub.clock.now() + timedelta(minutes=10)
        body = hub.upsert(
            "win-1",
            "40718263",
            starts_at=p.rfc3339(start),
            ends_at=p.rfc3339(start + timedelta(hours=1)),
            max_uses=2,
        )
        status, results = await hub.send(hub.command("window.upsert", body))
        assert (status, results[0]["result"]) == (200, "applied")

        assert await hub.unlock("front-door", code="40718263") == (403, DENIED)  # too early
        await hub.advance(600)
        status, first = await hub.unlock("front-door", code="40718263")
        assert status == 200
        assert first["result"] == "unlocked"
        assert first["window_id"] == "win-1"
        assert await hub.unlock("front-door", code="40718264") == (403, DENIED)  # wrong code
        assert (await hub.unlock("front-door", code="40718263"))[0] == 200
        assert await hub.unlock("front-door", code="40718263") == (403, DENIED)  # max_uses

        records = await hub.records()  # signatures and the hash chain verified
        pods = bodies(records, "pod.recorded")
        assert [b["window_id"] for b in pods] == ["win-1", "win-1"]
        assert pods[0]["pod_id"] == first["pod_id"]
        assert pods[0]["method"] == "hub_code"
        assert pods[0]["lock_event"]["vendor"] == "sim"  # type: ignore[index]
        assert pods[0]["clock"] == {"synced": True, "source": "ntp"}
        statuses = [b["status"] for b in bodies(records, "window.status")]
        assert statuses == ["applied", "used"]
        reasons = [b["reason"] for b in bodies(records, "access.denied")]
        assert reasons == ["not_active", "no_match", "used_up"]
        assert "40718263" not in str(records)


async def test_a_window_closes_at_its_end_and_on_revoke(tmp_path: Path) -> None:
    async with running_hub(tmp_path, grace=60) as hub:
        await hub.send(hub.command("window.upsert", hub.upsert("win-end", "11112222")))
        await hub.send(hub.command("window.upsert", hub.upsert("win-rev", "33334444")))
        assert (await hub.unlock("front-door", code="33334444"))[0] == 200
        revoke = {"window_id": "win-rev", "version": 1, "reason": "courier cancelled"}
        assert (await hub.send(hub.command("window.revoke", revoke)))[0] == 200
        assert await hub.unlock("front-door", code="33334444") == (403, DENIED)

        await hub.advance(3600 + 59)  # within the grace after ends_at
        assert (await hub.unlock("front-door", code="11112222"))[0] == 200
        await hub.advance(2)  # past the grace: the deadline task expires it exactly
        assert await hub.unlock("front-door", code="11112222") == (403, DENIED)

        statuses = [
            (b["window_id"], b["status"]) for b in bodies(await hub.records(), "window.status")
        ]
        assert ("win-rev", "revoked") in statuses
        assert ("win-end", "expired") in statuses
        windows = (await hub.admin("/v1/admin/windows"))["windows"]
        assert {w["window_id"]: w["state"] for w in windows} == {
            "win-end": "expired",
            "win-rev": "revoked",
        }


async def test_commands_apply_by_version_in_any_order_and_replays_are_refused(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        v2 = hub.command("window.upsert", hub.upsert("win-v", "55556666", version=2))
        v1 = hub.command("window.upsert", hub.upsert("win-v", "77778888", version=1))
        assert (await hub.send(v2))[1][0]["result"] == "applied"
        status, results = await hub.send(v1)  # older version arrives late: no change
        assert (status, results[0]["reason"]) == (200, "not_newer")
        status, results = await hub.send(v2)  # the same message again
        assert (status, results[0]["reason"]) == (422, "replayed")
        assert (await hub.unlock("front-door", code="55556666"))[0] == 200

        # A revoke that overtakes its window leaves a tombstone the upsert cannot pass.
        early = {"window_id": "win-t", "version": 3, "reason": "cancelled"}
        await hub.send(hub.command("window.revoke", early))
        await hub.send(hub.command("window.upsert", hub.upsert("win-t", "99990000", version=3)))
        assert await hub.unlock("front-door", code="99990000") == (403, DENIED)

        results = bodies(await hub.records(), "command.result")
        assert [r["result"] for r in results] == [
            "applied",
            "applied",
            "rejected",
            "applied",
            "applied",
        ]


async def test_forged_and_foreign_commands_change_nothing(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        batch = hub.command("window.upsert", hub.upsert("win-f", "12121212"))
        (envelope,) = p.decode_batch(batch)
        signature = envelope["signature"]
        flipped = "A" if signature[20] != "A" else "B"
        forged = {**envelope, "signature": signature[:20] + flipped + signature[21:]}
        status, results = await hub.send(p.encode_batch([forged]))
        assert (status, results[0]["reason"]) == (422, "bad_signature")
        assert await hub.unlock("front-door", code="12121212") == (403, DENIED)
        alerts = bodies(await hub.records(), "hub.alert")
        assert [a["kind"] for a in alerts] == ["command_unverified"]
        response = await hub.client.post("/v1/admin/commands", data=batch)
        assert response.status == 401


async def test_task_complete_and_full_sync_revoke_what_they_should(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        for window_id, code in (("w-a", "10101010"), ("w-b", "20202020"), ("w-c", "30303030")):
            await hub.send(hub.command("window.upsert", hub.upsert(window_id, code)))
        await hub.send(hub.command("task.complete", {"task_id": "task-w-a"}))
        assert await hub.unlock("front-door", code="10101010") == (403, DENIED)
        # A full set in two pages naming only w-c: w-b is revoked once the set is complete.
        keep = hub.upsert("w-c", "30303030", version=2)
        page1 = {"set_version": 5, "page": 1, "pages": 2, "windows": [keep]}
        page2 = {"set_version": 5, "page": 2, "pages": 2, "windows": []}
        assert (await hub.send(hub.command("windows.sync", page1)))[1][0]["reason"] == "page_held"
        assert (await hub.unlock("front-door", code="20202020"))[0] == 200
        await hub.send(hub.command("windows.sync", page2))
        assert await hub.unlock("front-door", code="20202020") == (403, DENIED)
        assert (await hub.unlock("front-door", code="30303030"))[0] == 200


async def test_a_courier_token_opens_a_window_whose_push_never_arrived(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        token = hub.token("win-tok", max=1)
        status, body = await hub.unlock("front-door", token=token)
        assert (status, body["window_id"]) == (200, "win-tok")
        assert await hub.unlock("front-door", token=token) == (403, DENIED)  # single use
        other = hub.token("win-tok2", lock_id="parcel-room")
        assert await hub.unlock("front-door", token=other) == (403, DENIED)  # wrong lock
        await hub.send(
            hub.command("window.revoke", {"window_id": "win-r", "version": 1, "reason": "x"})
        )
        assert await hub.unlock("front-door", token=hub.token("win-r")) == (403, DENIED)
        pods = bodies(await hub.records(), "pod.recorded")
        assert [(b["method"], str(b["credential_ref"])[:6]) for b in pods] == [
            ("courier_token", "token:")
        ]


async def test_lock_enforced_code_is_set_at_start_removed_at_end_and_attributed(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        start = hub.clock.now() + timedelta(minutes=5)
        body = hub.upsert(
            "win-k",
            "24682468",
            lock_id="parcel-room",
            enforcement="lock",
            starts_at=p.rfc3339(start),
            ends_at=p.rfc3339(start + timedelta(minutes=30)),
        )
        await hub.send(hub.command("window.upsert", body))
        sim = hub.sim("parcel-room")
        await hub.quiet()
        assert sim.keypad_codes() == {}  # not before the window opens
        assert not sim.press("24682468")

        await hub.advance(300)
        await hub.quiet()
        assert len(sim.keypad_codes()) == 1
        # Lock-enforced only: the hub itself does not accept the code.
        assert await hub.unlock("parcel-room", code="24682468") == (403, DENIED)
        assert sim.press("24682468")
        await hub.advance(0)

        await hub.advance(1800)
        await hub.quiet()
        assert sim.keypad_codes() == {}
        records = await hub.records()
        statuses = [b["status"] for b in bodies(records, "window.status")]
        assert statuses == ["applied", "set_on_lock", "expired", "removed_from_lock"]
        (pod,) = bodies(records, "pod.recorded")
        assert (pod["method"], pod["window_id"]) == ("lock_keypad", "win-k")
        window = hub.hub.engine.cache.get("win-k")
        assert window is not None
        assert window.code_sealed is None


async def test_an_unlock_no_window_explains_is_recorded_and_alerted(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        assert hub.sim("front-door").turn_thumb()
        await hub.advance(0)
        records = await hub.records()
        (event,) = [b for b in bodies(records, "lock.event") if b["event"] == "unlocked"]
        assert event["unattributed"] is True
        assert [a["kind"] for a in bodies(records, "hub.alert")] == ["unattributed_unlock"]


async def test_relock_time_is_captured_when_the_lock_reports_it(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(hub.command("window.upsert", hub.upsert("win-rl", "13571357")))
        status, body = await hub.unlock("front-door", code="13571357")
        assert status == 200
        await hub.advance(5)  # the simulated lock relocks itself after 5 s
        relocks = [b for b in bodies(await hub.records(), "lock.event") if b["event"] == "locked"]
        assert relocks[0]["details"]["pod_id"] == body["pod_id"]  # type: ignore[index]


async def test_an_unreachable_lock_answers_503_and_the_attempt_is_recorded(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(hub.command("window.upsert", hub.upsert("win-u", "86428642")))
        hub.sim("front-door").set_reachable(False)
        task = __import__("asyncio").create_task(hub.unlock("front-door", code="86428642"))
        while not task.done():  # the coordinator's retries sleep on the fake clock
            await hub.advance(1)
        assert (await task)[0] == 503
        failed = [
            b for b in bodies(await hub.records(), "lock.event") if b["event"] == "unlock_failed"
        ]
        assert failed[0]["details"]["window_id"] == "win-u"  # type: ignore[index]
        assert await hub.unlock("nowhere", code="86428642") == (403, DENIED)


def _unused(h: HubHarness) -> None:  # keeps the import for type checkers reading the helpers
    del h


async def test_a_completed_task_stays_completed_across_a_restart(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(hub.command("task.complete", {"task_id": "task-win-late"}))
        seq = hub.seq
        cloud = hub.cloud
    async with running_hub(tmp_path, cloud=cloud) as hub:
        hub.seq = seq
        late = hub.command("window.upsert", hub.upsert("win-late", "19283746"))
        status, results = await hub.send(late)
        assert (status, results[0]["reason"]) == (200, "task_complete")
        assert await hub.unlock("front-door", code="19283746") == (403, DENIED)
        (status_body,) = [
            b for b in bodies(await hub.records(), "window.status") if b["window_id"] == "win-late"
        ]
        assert (status_body["status"], status_body["detail"]) == ("revoked", "task_complete")
