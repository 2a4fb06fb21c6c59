"""Windows and tasks over HTTP: the code once, commands the hub accepts and opens, sync state."""

from __future__ import annotations

from typing import Any

from cloud_sync.protocol.commands import TaskComplete, WindowRevoke, WindowUpsert
from cloud_sync.protocol.envelope import Signer, decode_batch, verify
from cloud_sync.protocol.ids import new_ulid
from cloud_sync.protocol.messages import Command, decode_command
from cloud_sync.protocol.sealing import open_code
from cloud_sync.protocol.topics import Channel, parse_topic
from cloud_sync.service import Outgoing
from gateway.identity import HubKeys
from tests.cloud.conftest import HUB_ID, HubChain

from .conftest import WINDOWS, Cloud


def opened(messages: list[Outgoing], signer: Signer) -> list[Command]:
    """Each published command, verified with the cloud's public key as the hub does."""
    keys = {signer.kid: signer.key.public_key()}
    commands = []
    for topic, payload in messages:
        assert parse_topic("lockhub/v1", topic) == (HUB_ID, Channel.COMMANDS)
        commands += [decode_command(verify(env, keys).payload) for env in decode_batch(payload)]
    return commands


async def test_a_window_is_created_with_its_code_once_and_sealed_to_the_hub(
    cloud: Cloud, cloud_signer: Signer, hub_keys: HubKeys
) -> None:
    response = await cloud.create(carrier_job_id="job-9")
    assert response.status == 201
    assert response.headers["Cache-Control"] == "no-store"
    made = await response.json()
    code, window_id = made["code"], made["window_id"]
    assert len(code) == 8
    assert code.isdigit()
    assert response.headers["Location"] == f"{WINDOWS}/{window_id}"
    assert (made["task_id"], made["hub_id"], made["lock_id"]) == ("task-1", HUB_ID, "front-door")
    assert (made["starts_at"], made["ends_at"]) == (
        "2026-03-01T12:00:00.000Z", "2026-03-01T14:00:00.000Z",
    )  # fmt: skip
    assert (made["version"], made["max_uses"], made["enforcement"]) == (1, 1, "hub")
    assert made["courier"] == {"id": "c-7", "name": "Ada"}
    assert made["sync"] == {
        "hub_status": None, "hub_status_at": None, "hub_version": None, "up_to_date": False,
    }  # fmt: skip
    [batch] = cloud.published
    [command] = opened(batch, cloud_signer)
    assert isinstance(command, WindowUpsert)
    assert command.body.window_id == window_id
    assert command.body.tenant_id == "acme"
    assert open_code(command.body.code_sealed, window_id, hub_keys.sealing) == code
    status, shown = await cloud.call("GET", f"{WINDOWS}/{window_id}")
    assert status == 200
    assert "code" not in shown
    assert shown == {key: value for key, value in made.items() if key != "code"}
    assert code not in str(await cloud.call("GET", WINDOWS))


async def test_revoke_complete_and_the_task(cloud: Cloud, cloud_signer: Signer) -> None:
    first = await (await cloud.create()).json()
    second = await (await cloud.create()).json()
    status, task = await cloud.call("GET", "/v1/acme/tasks/task-1")
    assert status == 200
    assert task == {
        "task_id": "task-1", "status": "pending", "delivered_at": None, "pod": None,
        "window_ids": [first["window_id"], second["window_id"]],
    }  # fmt: skip
    cloud.published.clear()
    status, revoked = await cloud.call("DELETE", f"{WINDOWS}/{first['window_id']}")
    assert (status, revoked["desired"], revoked["version"]) == (200, "revoked", 2)
    [revoke] = opened(cloud.published.pop(), cloud_signer)
    assert isinstance(revoke, WindowRevoke)
    assert (revoke.body.window_id, revoke.body.version) == (first["window_id"], 2)
    status, done = await cloud.call("POST", "/v1/acme/tasks/task-1/complete")
    assert (status, done["status"]) == (200, "completed")
    [complete] = opened(cloud.published.pop(), cloud_signer)
    assert isinstance(complete, TaskComplete)
    assert complete.body.task_id == "task-1"
    status, shown = await cloud.call("GET", f"{WINDOWS}/{second['window_id']}")
    assert (status, shown["desired"]) == (200, "revoked")


async def test_list_filters_by_task(cloud: Cloud) -> None:
    one = await (await cloud.create()).json()
    two = await (await cloud.create(task_id="task-2")).json()
    status, listed = await cloud.call("GET", WINDOWS)
    assert status == 200
    assert [w["window_id"] for w in listed["windows"]] == [one["window_id"], two["window_id"]]
    status, listed = await cloud.call("GET", WINDOWS, params={"task_id": "task-2"})
    assert [w["window_id"] for w in listed["windows"]] == [two["window_id"]]
    assert await cloud.call("GET", WINDOWS, params={"task_id": "nope"}) == (200, {"windows": []})


async def test_the_hubs_report_and_pod_show_up(cloud: Cloud, chain: HubChain) -> None:
    made = await (await cloud.create()).json()
    window_id = made["window_id"]
    status_body = {"window_id": window_id, "version": 1, "status": "set_on_lock", "detail": None}
    pod: dict[str, Any] = {
        "pod_id": new_ulid(), "window_id": window_id, "task_id": "task-1",
        "tenant_id": "acme", "lock_id": "front-door", "method": "hub_code",
        "credential_ref": f"window:{window_id}", "unlocked_at": "2026-03-01T12:05:00.000Z",
        "relocked_at": None, "lock_event": {"vendor": "sim", "type": "unlocked"},
    }  # fmt: skip
    records = [chain.record("window.status", status_body), chain.record("pod.recorded", pod)]
    await cloud.service.store.ingest(HUB_ID, records)
    _, shown = await cloud.call("GET", f"{WINDOWS}/{window_id}")
    assert shown["sync"] == {
        "hub_status": "set_on_lock", "hub_status_at": "2026-03-01T12:00:00.000Z",
        "hub_version": 1, "up_to_date": True,
    }  # fmt: skip
    _, task = await cloud.call("GET", "/v1/acme/tasks/task-1")
    assert (task["status"], task["delivered_at"]) == ("delivered", "2026-03-01T12:05:00.000Z")
    assert task["pod"] == {
        "pod_id": pod["pod_id"], "window_id": window_id, "hub_id": HUB_ID,
        "lock_id": "front-door", "method": "hub_code",
        "unlocked_at": "2026-03-01T12:05:00.000Z", "record_seq": 2,
    }  # fmt: skip


async def test_offsets_are_taken_and_shown_in_utc(cloud: Cloud) -> None:
    response = await cloud.create(
        starts_at="2026-03-01T13:00:00+01:00", ends_at="2026-03-01T09:30:00.500999-05:00"
    )
    made = await response.json()
    assert (made["starts_at"], made["ends_at"]) == (
        "2026-03-01T12:00:00.000Z", "2026-03-01T14:30:00.500Z",
    )  # fmt: skip
    stored = await cloud.service.get_window("acme", made["window_id"])
    assert stored.ends_at.microsecond == 500_000  # what the hub holds is what is shown


async def test_unknown_ids_are_404(cloud: Cloud) -> None:
    missing = "01JNB00000000000000000000X"
    for method, path in [
        ("GET", f"{WINDOWS}/{missing}"),
        ("DELETE", f"{WINDOWS}/{missing}"),
        ("GET", f"{WINDOWS}/not%20an%20id"),
        ("GET", "/v1/acme/tasks/task-404"),
        ("POST", "/v1/acme/tasks/task-404/complete"),
    ]:
        assert await cloud.call(method, path) == (404, {"error": "not_found"}), path
    assert cloud.published == []
