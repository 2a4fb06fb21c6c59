"""`lockhub gateway locks|scan|pair`: the daemon's lock list, a BLE scan, pairing's errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import load_gateway_config
from gateway.daemon import run_gateway
from gateway.identity import init_identity
from gateway.lockcli import identify
from gateway.locks.ble.fake import FakeAir, FakePeripheral
from tests.infra.services import free_port

from .conftest import write_config
from .test_run import wait_until_healthy

NUKI_KEYTURNER = "a92ee200-5501-11e4-916c-0800200c9a66"


async def test_locks_asks_the_running_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    path = write_config(tmp_path, port=port)
    config = load_gateway_config(path)
    init_identity(config.hub.state_dir)
    stop = asyncio.Event()
    task = asyncio.create_task(run_gateway(config, stop))
    try:
        await wait_until_healthy(f"http://127.0.0.1:{port}", task)
        code = await asyncio.to_thread(main, ["gateway", "locks", "--config", str(path), "--json"])
        assert code == 0
        out = capsys.readouterr().out  # the in-process daemon's own log lines come first
        (lock,) = json.loads(out[out.index('{\n  "locks"') :])["locks"]
        assert (lock["lock_id"], lock["vendor"], lock["state"]) == ("front-door", "sim", "locked")
        code = await asyncio.to_thread(main, ["gateway", "locks", "--config", str(path)])
        out = capsys.readouterr().out
        table = out[out.index("LOCK ") :].splitlines()
        assert table[0].split() == [
            "LOCK",
            "VENDOR",
            "STATE",
            "BATTERY",
            "DOOR",
            "KEYPAD",
            "BREAKER",
        ]
        assert table[1].split()[:4] == ["front-door", "sim", "locked", "100%"]
    finally:
        stop.set()
        await task


def test_locks_without_a_daemon_says_how_to_start_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, port=free_port())
    assert main(["gateway", "locks", "--config", str(path)]) == 1
    assert "start it with `lockhub gateway run`" in capsys.readouterr().err


def test_scan_lists_the_locks_heard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    air = FakeAir()
    nuki = FakePeripheral("54:D2:72:00:00:01", "Nuki_2A0000AB")
    nuki.service_uuids = [NUKI_KEYTURNER]
    yale = FakePeripheral("AA:00:00:00:00:02", "M1054L0")
    yale.manufacturer_data = {465: b"\x00"}
    other = FakePeripheral("AA:00:00:00:00:03", "headphones")
    for peripheral in (nuki, yale, other):
        air.add(peripheral)
    path = write_config(tmp_path, port=free_port())
    with air.install():
        code = main(["gateway", "scan", "--config", str(path), "--seconds", "0.2", "--json"])
    assert code == 0
    devices = json.loads(capsys.readouterr().out)["devices"]
    assert [(d["address"], d["model"]) for d in devices] == [
        ("54:D2:72:00:00:01", "Nuki Smart Lock"),
        ("AA:00:00:00:00:02", "Yale lock"),
    ]
    with air.install():
        assert main(["gateway", "scan", "--config", str(path), "--seconds", "0.2", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ADDRESS", "MODEL", "NAME", "RSSI"]
    assert any("headphones" in line for line in lines)


def test_scan_refuses_a_silly_duration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, port=free_port())
    assert main(["gateway", "scan", "--config", str(path), "--seconds", "0"]) == 2
    assert "--seconds must be between" in capsys.readouterr().err


def test_identify_names_each_vendor() -> None:
    assert identify(None, ["A92EE100-5501-11E4-916C-0800200C9A66"], []) == (
        "Nuki Smart Lock (pairing mode)"
    )
    assert identify("Nuki_1234", [], []) == "Nuki Smart Lock"
    assert identify(None, [], [302]) == "ASSA ABLOY / August lock"
    assert identify(None, ["0000fe24-0000-1000-8000-00805f9b34fb"], []) == "Yale / August lock"
    assert identify("kettle", [], [76]) == ""


def test_pair_names_a_lock_that_is_not_configured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, port=free_port())
    assert main(["gateway", "pair", "nuki", "--lock", "back-door", "--config", str(path)]) == 78
    err = capsys.readouterr().err
    assert "locks: no lock with id 'back-door' (configured: front-door)" in err


def test_pair_checks_the_lock_has_that_vendors_driver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, port=free_port())
    assert main(["gateway", "pair", "schlage", "--lock", "front-door", "--config", str(path)]) == 78
    assert "locks[front-door].driver: is 'sim'; `pair schlage` pairs 'schlage' locks" in (
        capsys.readouterr().err
    )


def test_pair_takes_the_driver_name_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, port=free_port())
    assert (
        main(["gateway", "pair", "yale_ble", "--lock", "front-door", "--config", str(path)]) == 78
    )
    assert "`pair yale_ble` pairs 'yale_ble' locks" in capsys.readouterr().err
