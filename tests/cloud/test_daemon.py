"""The cloud service's composition: a stopped MQTT worker stops the service and its watchdog."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from cloud_sync.config import ConfigError, load_cloud_config
from cloud_sync.daemon import ServiceFailedError, build_cloud, keep_pinging, serve_cloud
from cloud_sync.errors import CloudError
from cloud_sync.identity import init_cloud_identity
from cloud_sync.ingest import CloudWorker
from cloud_sync.store import migrate
from gateway.notify import Notifier
from tests.infra.services import free_port, port_open
from tests.sync.cloud import eventually

CLOUD_TOML = """
[cloud]
state_dir = "state"
database_url = "sqlite+aiosqlite:///{db}"
signing_kid = "cloud-1"

[mqtt]
url = "mqtt://127.0.0.1:1"

[api]
listen = "127.0.0.1:{port}"
"""


class DyingWorker(CloudWorker):
    """Fault injection: the worker's task ends with an error (run() itself never lets one out)."""

    async def run(self) -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("injected: the worker task died")


async def test_a_stopped_worker_stops_the_service_with_an_error(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / "cloud.toml"
    path.write_text(CLOUD_TOML.format(db=tmp_path / "cloud.db", port=port))
    config = load_cloud_config(path)
    init_cloud_identity(config.cloud.state_dir, "cloud-1")
    await migrate(config.cloud.database_url)
    cloud = await build_cloud(config)
    try:
        worker = cloud.worker
        cloud.worker = DyingWorker(
            worker.store, worker.service, worker.mqtt, worker.client_id, worker.group
        )
        serving = asyncio.create_task(serve_cloud(cloud, asyncio.Event()))
        await eventually(lambda: port_open(port) or serving.done(), "the API to listen")
        with pytest.raises(ServiceFailedError, match="the MQTT worker stopped") as caught:
            await asyncio.wait_for(serving, 10)
    finally:
        await cloud.store.close()
    # `lockhub cloud run` turns a CloudError into exit status 1: systemd restarts the unit.
    assert isinstance(caught.value, CloudError)
    assert "RuntimeError: injected" in str(caught.value)
    assert not port_open(port)


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.setblocking(False)
    try:
        yield sock, path
    finally:
        sock.close()


def drain(sock: socket.socket) -> list[bytes]:
    got = []
    while True:
        try:
            got.append(sock.recv(4096))
        except BlockingIOError:
            return got


async def test_the_watchdog_is_withheld_once_a_part_stopped(
    notify_socket: tuple[socket.socket, str],
) -> None:
    sock, path = notify_socket
    alive = True
    with structlog.testing.capture_logs() as logs:
        pinger = asyncio.create_task(keep_pinging(Notifier(path), 0.01, lambda: alive))
        try:
            pings: list[bytes] = []
            await eventually(lambda: bool(pings.extend(drain(sock)) or pings), "a ping")
            assert set(pings) == {b"WATCHDOG=1"}
            alive = False

            def withheld(count: int) -> bool:
                return sum(e["event"] == "watchdog.withheld" for e in logs) >= count

            await eventually(lambda: withheld(1), "the first withheld ping")
            drain(sock)  # pings sent before the part stopped
            await eventually(lambda: withheld(3), "more withheld pings")
            assert drain(sock) == []
        finally:
            pinger.cancel()
            await asyncio.gather(pinger, return_exceptions=True)


def test_worker_session_expiry_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    text = CLOUD_TOML.format(db=tmp_path / "cloud.db", port=8081)
    path.write_text(text)
    mqtt = load_cloud_config(path).mqtt
    assert (mqtt.protocol, mqtt.worker_session_expiry) == ("auto", 300)
    for value, ok in (("0", True), ("604800", True), ("604801", False), ("-1", False)):
        env = {"LOCKHUB_CLOUD_MQTT__WORKER_SESSION_EXPIRY": value}
        if ok:
            assert load_cloud_config(path, env).mqtt.worker_session_expiry == int(value)
        else:
            with pytest.raises(ConfigError, match=r"mqtt\.worker_session_expiry"):
                load_cloud_config(path, env)
