"""run_gateway in this process: serves the API until stopped, saves the floor, fails clearly."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from gateway.clock import FLOOR_KV_KEY, parse_floor
from gateway.config import load_gateway_config
from gateway.daemon import build_hub, run_gateway, stop_hub, watch_clock
from gateway.errors import ConfigError, GatewayError
from gateway.identity import init_identity
from gateway.testing import FakeClock
from tests.infra.services import free_port

from .conftest import ADMIN_TOKEN, write_config

# Waiting for the API to answer polls this often, at most this many times (5 s in all).
POLL_SECONDS = 0.02
POLLS = 250


async def get(url: str, **headers: str) -> tuple[int, object]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as answer:
        return answer.status, await answer.json()


async def wait_until_healthy(base: str, task: asyncio.Task[None]) -> None:
    for _ in range(POLLS):
        assert not task.done(), task.exception()
        with contextlib.suppress(aiohttp.ClientConnectionError):
            if (await get(base + "/healthz"))[0] == 200:
                return
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError("the API never answered /healthz")


async def test_the_daemon_serves_until_stopped_then_saves_the_floor(tmp_path: Path) -> None:
    port = free_port()
    config = load_gateway_config(write_config(tmp_path, port=port))
    init_identity(config.hub.state_dir)
    stop = asyncio.Event()
    task = asyncio.create_task(run_gateway(config, stop))
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_healthy(base, task)
        status, body = await get(base + "/readyz")
        assert (status, body) == (
            200,
            {"ready": True, "checks": {"store": True, "engine": True, "locks": True}},
        )
        status, locks = await get(base + "/v1/admin/locks", Authorization=f"Bearer {ADMIN_TOKEN}")
        assert status == 200
        assert [lock["lock_id"] for lock in locks["locks"]] == ["front-door"]  # type: ignore[index]
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)

    with contextlib.closing(sqlite3.connect(config.hub.state_dir / "hub.db")) as db:
        (floor,) = db.execute("SELECT value FROM kv WHERE key = ?", (FLOOR_KV_KEY,)).fetchone()
    assert parse_floor(floor) is not None


async def test_a_port_in_use_fails_with_a_gateway_error_and_closes_the_store(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = load_gateway_config(write_config(tmp_path, port=port))
        init_identity(config.hub.state_dir)
        with pytest.raises(GatewayError, match=f"cannot listen on 127.0.0.1:{port}"):
            await asyncio.wait_for(run_gateway(config, asyncio.Event()), 5)
    with contextlib.closing(sqlite3.connect(config.hub.state_dir / "hub.db")) as db:
        assert db.execute("SELECT value FROM kv WHERE key = ?", (FLOOR_KV_KEY,)).fetchone()


async def test_a_lock_config_error_fails_before_the_store_opens(tmp_path: Path) -> None:
    config = load_gateway_config(write_config(tmp_path, port=free_port(), driver="nuki_ble"))
    init_identity(config.hub.state_dir)
    with pytest.raises(ConfigError) as raised:
        await build_hub(config)
    assert "locks[front-door].options.address" in "\n".join(raised.value.lines)
    assert not (config.hub.state_dir / "hub.db").exists()


async def test_a_wall_clock_behind_the_floor_is_reported_and_alerted(tmp_path: Path) -> None:
    config = load_gateway_config(write_config(tmp_path, port=free_port()))
    init_identity(config.hub.state_dir)
    clock = FakeClock()
    hub = await build_hub(
        config, wall=clock.now, monotonic=clock.monotonic, sync_check=lambda: True
    )
    try:
        hub.clock.restore_floor(clock.now() + timedelta(hours=1))
        watcher = asyncio.create_task(watch_clock(hub))
        for _ in range(POLLS):
            if await hub.store.outbox_depth() >= 2:
                break
            await asyncio.sleep(POLL_SECONDS)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        records = [r.type for r in await hub.store.unacked(10)]
        assert records == ["clock.status", "hub.alert"]
    finally:
        await stop_hub(hub)
