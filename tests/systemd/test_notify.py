"""sd_notify on a real datagram socket (a path and an abstract name), the watchdog's health rule,
and a real daemon telling a stand-in for systemd READY, WATCHDOG and STOPPING."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.config import load_gateway_config
from gateway.daemon import Hub, build_hub, stop_hub
from gateway.identity import init_identity
from gateway.notify import Notifier, Vitals, one_line, socket_address, watchdog_interval
from gateway.sync.client import CONNECT_TIMEOUT_SECONDS
from gateway.sync.settings import SyncSettings
from gateway.testing import FakeClock
from tests.infra.services import free_port

from ..daemon.conftest import write_config
from ..daemon.test_process import LOCKHUB, REPO, env, lockhub, status_of

# Datagrams arrive at once on a local socket; a real daemon starts in about a second.
RECEIVE_SECONDS = 10.0
# WATCHDOG_USEC for the daemon run: pings every 0.15 s, so a few arrive in a short test.
WATCHDOG_USEC = 300_000
DAY = 86_400.0


@contextlib.contextmanager
def listener(kind: str) -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket standing in for systemd's; yields it and its $NOTIFY_SOCKET value."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with sock, tempfile.TemporaryDirectory(dir="/tmp") as short:  # paths: 108 bytes at most
        if kind == "abstract":
            value = "@lockhub-test-" + secrets.token_hex(6)
        else:
            value = str(Path(short) / "notify")
        sock.bind(socket_address(value))
        sock.settimeout(RECEIVE_SECONDS)
        yield sock, value


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_each_message_is_one_datagram_of_key_value_lines(kind: str) -> None:
    with listener(kind) as (sock, value):
        notifier = Notifier.from_env({"NOTIFY_SOCKET": value})
        assert notifier.enabled
        assert notifier.ready("1/1 locks reachable")
        assert receive(sock) == ["READY=1", "STATUS=1/1 locks reachable"]
        assert notifier.watchdog()
        assert receive(sock) == ["WATCHDOG=1"]
        assert notifier.status("unhealthy:\nstore\tstuck")
        assert receive(sock) == ["STATUS=unhealthy: store stuck"]
        assert notifier.reloading()
        reloading, monotonic = receive(sock)
        assert reloading == "RELOADING=1"
        assert abs(int(monotonic.removeprefix("MONOTONIC_USEC=")) / 1e6 - time.monotonic()) < 5
        assert notifier.stopping("stopping")
        assert receive(sock) == ["STOPPING=1", "STATUS=stopping"]


def test_without_a_socket_nothing_is_sent_and_a_vanished_socket_is_no_error() -> None:
    assert not Notifier.from_env({}).enabled
    assert not Notifier.from_env({}).watchdog()
    with tempfile.TemporaryDirectory(dir="/tmp") as short:
        assert not Notifier(str(Path(short) / "gone")).ready("up")


def test_one_line_bounds_a_status() -> None:
    assert one_line("a\n b\r\n c") == "a b c"
    assert len(one_line("x" * 1000)) == 200


@pytest.mark.parametrize(
    ("environment", "interval"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, None),
    ],
)
def test_the_watchdog_interval_is_half_of_watchdog_usec_for_our_pid(
    environment: dict[str, str], interval: float | None
) -> None:
    assert watchdog_interval(environment, pid=4242) == interval


@contextlib.asynccontextmanager
async def offline_hub(tmp_path: Path, settings: SyncSettings) -> AsyncIterator[Hub]:
    """A hub whose broker (port 1) refuses every connection."""
    config = load_gateway_config(write_config(tmp_path, port=free_port()))
    init_identity(config.hub.state_dir)
    hub = await build_hub(config, sync_check=lambda: True, sync_settings=settings)
    try:
        yield hub
    finally:
        await stop_hub(hub)


async def test_a_link_retrying_for_days_is_healthy_and_a_stuck_one_is_not(tmp_path: Path) -> None:
    # Retries every few milliseconds; the watchdog's clock jumps a day between checks.
    settings = SyncSettings(backoff_base=0.001, backoff_cap=0.01)
    clock = FakeClock()
    async with offline_hub(tmp_path, settings) as hub:
        assert hub.link is not None
        vitals = Vitals(hub.store, hub.link, monotonic=clock.monotonic)
        link = asyncio.create_task(hub.link.run())
        try:
            for _ in range(5):
                await asyncio.sleep(0.1)
                clock.advance(DAY)
                assert await vitals.problem(1.0) is None
        finally:
            link.cancel()
            await asyncio.gather(link, return_exceptions=True)
        # The link task is gone: no attempt moves its marks any more.
        limit = 2 * (settings.backoff_cap + CONNECT_TIMEOUT_SECONDS)
        assert vitals.link_problem() is None
        clock.advance(limit - 1)
        assert vitals.link_problem() is None
        clock.advance(2)
        assert vitals.link_problem() == f"mqtt link made no attempt for {limit + 1:.0f} s"


async def test_a_wedged_or_closed_store_withholds_the_ping(tmp_path: Path) -> None:
    async with offline_hub(tmp_path, SyncSettings()) as hub:
        vitals = Vitals(hub.store, hub.link)
        assert await vitals.store_problem(0.5) is None
        # A write stuck inside its transaction holds the store's lock: the probe waits on it.
        async with hub.store._db._lock:
            assert await vitals.store_problem(0.1) == "store did not answer in 0.1 s"
        await hub.store.close()
        assert await vitals.problem(0.5) == "store failed: the store is closed"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_the_daemon_says_ready_pings_while_healthy_and_says_stopping(
    kind: str, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port)
    assert lockhub("init", "--config", str(config)).returncode == 0
    with listener(kind) as (sock, value):
        environment = {**env(), "NOTIFY_SOCKET": value, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        process = subprocess.Popen(
            [*LOCKHUB, "run", "--config", str(config)],
            env=environment,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            first = receive(sock)
            # READY=1 comes once the API listens.
            assert first[0] == "READY=1"
            assert first[1].startswith("STATUS=1/1 locks reachable; mqtt offline; outbox ")
            assert status_of(f"http://127.0.0.1:{port}/healthz") == 200
            messages = [receive(sock) for _ in range(4)]
            assert messages.count(["WATCHDOG=1"]) >= 3
            process.send_signal(signal.SIGTERM)
            stopping = next(m for m in iter(lambda: receive(sock), None) if "STOPPING=1" in m)
            assert stopping[1].startswith("STATUS=stopping")
            assert process.wait(timeout=RECEIVE_SECONDS) == 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
