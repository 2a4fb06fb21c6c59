"""Windows: codes sealed to the hub, signed commands the hub accepts, revocation, tasks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from cloud_sync.errors import InvalidRequestError, NotFoundError, UnknownHubError
from cloud_sync.protocol.commands import WindowRevoke, WindowUpsert
from cloud_sync.protocol.envelope import Signer, decode_batch, verify
from cloud_sync.protocol.messages import Command
from cloud_sync.protocol.policy import accept_command
from cloud_sync.protocol.sealing import open_code
from cloud_sync.protocol.topics import Channel, parse_topic
from cloud_sync.service import COMMAND_LIFETIME, CloudService, Outgoing

from .conftest import HUB_ID, START, TENANT, HubKeys, SettableClock


def hub_accepts(out: list[Outgoing], signer: Signer, clock: SettableClock) -> list[Command]:
    """What the hub does with each published message: verify, then accept."""
    keys = {signer.kid: signer.key.public_key()}
    commands = []
    for topic, payload in out:
        assert parse_topic("lockhub/v1", topic) == (HUB_ID, Channel.COMMANDS)
        for envelope in decode_batch(payload):
            commands.append(accept_command(verify(envelope, keys), hub_id=HUB_ID, now=clock()))
    return commands


async def make_window(service: CloudService, **changes: Any) -> tuple[Any, str, list[Outgoing]]:
    args: dict[str, Any] = {
        "hub_id": HUB_ID, "lock_id": "front-door", "starts_at": START,
        "ends_at": START + timedelta(hours=2), "max_uses": 1, "enforcement": "hub",
        "courier": {"id": "c-7", "name": "Ada"}, **changes,
    }  # fmt: skip
    return await service.create_window(TENANT, "task-1", **args)


async def test_create_window_gives_a_command_the_hub_accepts_and_opens(
    service: CloudService, cloud_signer: Signer, hub_keys: HubKeys, clock: SettableClock
) -> None:
    view, code, out = await make_window(service, carrier_job_id="job-9")
    assert len(code) == 8
    assert code.isdigit()
    [command] = hub_accepts(out, cloud_signer, clock)
    assert isinstance(command, WindowUpsert)
    assert command.expires_at - command.issued_at == COMMAND_LIFETIME
    body = command.body
    assert (body.window_id, body.version, body.task_id, body.tenant_id) == (
        view.window_id, 1, "task-1", TENANT,
    )  # fmt: skip
    assert open_code(body.code_sealed, view.window_id, hub_keys.sealing) == code
    assert body.courier is not None
    assert body.courier.name == "Ada"
    assert body.carrier_job_id == "job-9"
    stored = await service.store.get_window(TENANT, view.window_id)
    assert stored is not None
    assert stored.code_hash is not None
    assert code not in stored.code_hash
    assert stored.code_sealed == body.code_sealed
    assert await service.get_window(TENANT, view.window_id) == view
    task = await service.get_task(TENANT, "task-1")
    assert (task.status, task.pod, task.window_ids) == ("pending", None, [view.window_id])


async def test_every_window_gets_its_own_code_and_seq(
    service: CloudService, cloud_signer: Signer, clock: SettableClock
) -> None:
    made = [await make_window(service) for _ in range(3)]
    seqs = [hub_accepts(out, cloud_signer, clock)[0].seq for _, _, out in made]
    assert seqs == [1, 2, 3]
    assert len({code for _, code, _ in made}) == 3
    assert len(await service.list_windows(TENANT, "task-1")) == 3
    assert await service.list_windows("tenant-b") == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ends_at": START}, "window"),
        ({"enforcement": "door"}, "enforcement"),
        ({"max_uses": 0}, "max_uses"),
        ({"lock_id": "bad lock"}, "lock_id"),
        (
            {"starts_at": START - timedelta(hours=3), "ends_at": START - timedelta(hours=1)},
            "ends_at",
        ),
    ],
)
async def test_invalid_windows_are_refused(
    service: CloudService, changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await make_window(service, **changes)
    assert caught.value.field == field
    assert await service.list_windows(TENANT) == []


async def test_a_window_for_an_unknown_hub_is_refused(service: CloudService) -> None:
    with pytest.raises(UnknownHubError):
        await make_window(service, hub_id="hub-9999")


async def test_revoke_bumps_the_version_and_forgets_the_code(
    service: CloudService, cloud_signer: Signer, clock: SettableClock
) -> None:
    view, _, _ = await make_window(service)
    revoked, out = await service.revoke_window(TENANT, view.window_id)
    [command] = hub_accepts(out, cloud_signer, clock)
    assert isinstance(command, WindowRevoke)
    assert (command.body.window_id, command.body.version) == (view.window_id, 2)
    assert (revoked.desired, revoked.version) == ("revoked", 2)
    stored = await service.store.get_window(TENANT, view.window_id)
    assert stored is not None
    assert (stored.code_hash, stored.code_sealed) == (None, None)
    again, _ = await service.revoke_window(TENANT, view.window_id)
    assert again.version == 2
    with pytest.raises(NotFoundError):
        await service.revoke_window("tenant-b", view.window_id)
    with pytest.raises(NotFoundError):
        await service.get_window("tenant-b", view.window_id)


async def test_complete_task_revokes_its_windows(
    service: CloudService, cloud_signer: Signer, clock: SettableClock
) -> None:
    view, _, _ = await make_window(service)
    task, out = await service.complete_task(TENANT, "task-1")
    [command] = hub_accepts(out, cloud_signer, clock)
    assert command.type == "task.complete"
    assert task.status == "completed"
    assert (await service.get_window(TENANT, view.window_id)).desired == "revoked"
    with pytest.raises(NotFoundError):
        await service.complete_task(TENANT, "task-404")
    with pytest.raises(NotFoundError):
        await service.get_task(TENANT, "task-404")


def test_keypad_codes_suit_every_keypad() -> None:
    from cloud_sync.service import new_code  # noqa: PLC0415 - one test's import

    codes = {new_code("lock") for _ in range(2000)} | {new_code("both") for _ in range(500)}
    assert all(len(code) == 6 and code.isdigit() and "0" not in code for code in codes)
    assert not any(code.startswith("12") for code in codes)
    assert len(codes) > 2000  # drawn from the CSPRNG, not a short list
    hub_codes = {new_code("hub") for _ in range(200)}
    assert all(len(code) == 8 and code.isdigit() for code in hub_codes)
