"""Through the local API: tokens of completed tasks and of windows a complete sync left out."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from gateway.access.decide import SYNC_SNAPSHOT_MARGIN

from .harness import running_hub

DENIED = (403, {"error": "denied"})


async def test_a_completed_tasks_token_is_refused_though_its_window_never_arrived(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        token = hub.token("win-tc")  # its task is task-win-tc
        await hub.send(hub.command("task.complete", {"task_id": "task-win-tc"}))
        assert await hub.unlock("front-door", token=token) == DENIED
        assert (await hub.unlock("front-door", token=hub.token("win-other")))[0] == 200
        cloud, seq = hub.cloud, hub.seq
    async with running_hub(tmp_path, cloud=cloud, start=hub.clock.now()) as hub:
        hub.seq = seq
        assert await hub.unlock("front-door", token=token) == DENIED


async def test_a_complete_sync_refuses_older_tokens_of_windows_it_left_out(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        old = hub.token("win-s", exp=int((hub.clock.now() + timedelta(hours=3)).timestamp()))
        await hub.advance(SYNC_SNAPSHOT_MARGIN.total_seconds() + 1)
        page = {"set_version": 1, "page": 1, "pages": 1, "windows": []}
        await hub.send(hub.command("windows.sync", page))
        fresh = hub.token("win-new")  # minted after the set: newer than it
        assert await hub.unlock("front-door", token=old) == DENIED
        assert (await hub.unlock("front-door", token=fresh))[0] == 200
        cloud, seq = hub.cloud, hub.seq
    async with running_hub(tmp_path, cloud=cloud, start=hub.clock.now()) as hub:
        hub.seq = seq
        assert await hub.unlock("front-door", token=old) == DENIED  # the mark was persisted
        denied = [r["body"] for r in await hub.records() if r["type"] == "access.denied"]
        assert [d["reason"] for d in denied] == ["revoked", "revoked"]  # before and after
