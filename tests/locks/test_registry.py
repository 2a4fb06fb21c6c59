"""build_driver: sim options validated with field paths, drivers not built yet refused clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import LockSection, load_gateway_config
from gateway.errors import ConfigError
from gateway.locks import DRIVERS, DoorState, LockDriver, LockState, LockStatus, SimLock
from gateway.locks.registry import build_driver
from gateway.testing import FakeClock


def section(driver: str = "sim", **options: Any) -> LockSection:
    return LockSection.model_validate({"id": "front-door", "driver": driver, "options": options})


def build(clock: FakeClock, lock: LockSection, **kwargs: str) -> LockDriver:
    return build_driver(lock, now=clock.now, sleep=clock.sleep, **kwargs)


async def test_sim_with_defaults(fake_clock: FakeClock) -> None:
    driver = build(fake_clock, section())
    assert isinstance(driver, SimLock)
    assert (driver.lock_id, driver.vendor, driver.has_keypad) == ("front-door", "sim", True)
    assert await driver.status() == LockStatus(LockState.LOCKED, 100, DoorState.CLOSED)
    await driver.stop()


async def test_sim_options_reach_the_lock(fake_clock: FakeClock) -> None:
    driver = build(
        fake_clock,
        section(
            latency=0,
            battery_percent=15,
            has_keypad=False,
            keypad_slots=4,
            auto_relock_after=None,
            door_sensor=False,
        ),
    )
    assert isinstance(driver, SimLock)
    assert not driver.has_keypad
    assert driver.snapshot() == LockStatus(LockState.LOCKED, 15, DoorState.UNKNOWN)
    await driver.unlock("r")
    assert fake_clock.sleepers == 0  # no relock timer
    await driver.stop()


def test_unknown_option_names_the_field(fake_clock: FakeClock) -> None:
    with pytest.raises(ConfigError) as caught:
        build(fake_clock, section(latncy=1.0), source="/etc/lockhub/gateway.toml")
    assert caught.value.source == "/etc/lockhub/gateway.toml"
    [line] = caught.value.lines
    assert line.startswith("/etc/lockhub/gateway.toml: locks[front-door].options.latncy: ")
    assert "unknown option" in line
    assert "latency" in line  # the allowed names help with the typo


def test_bad_values_name_each_field(fake_clock: FakeClock) -> None:
    with pytest.raises(ConfigError) as caught:
        build(fake_clock, section(keypad_slots=0, battery_percent="full", latency=-1))
    assert caught.value.source == "config"
    assert sorted(line.split(": ")[1] for line in caught.value.lines) == [
        "locks[front-door].options.battery_percent",
        "locks[front-door].options.keypad_slots",
        "locks[front-door].options.latency",
    ]
    assert "must be greater than or equal to 1" in str(caught.value)


def test_a_driver_whose_library_is_missing_says_which_extra(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(DRIVERS, "nuki_ble", "lockhub_no_such_module:build")
    with pytest.raises(ConfigError) as caught:
        build(fake_clock, section("nuki_ble"))
    (line,) = caught.value.lines
    assert line.startswith("config: locks[front-door].driver: driver 'nuki_ble' needs a library")
    assert "lockhub_no_such_module" in line
    assert "'ble' and 'vendors' extras" in line


def test_an_unregistered_driver_is_refused(
    fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(DRIVERS, "schlage")
    with pytest.raises(ConfigError, match="unknown driver 'schlage'"):
        build(fake_clock, section("schlage"))


def test_every_config_choice_has_a_driver() -> None:
    assert set(DRIVERS) == {"sim", "nuki_ble", "nuki_bridge", "yale_ble", "yale_cloud", "schlage"}


async def test_from_a_config_file(tmp_path: Path, fake_clock: FakeClock) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[hub]\nid = "hub-1"\nstate_dir = "state"\n[mqtt]\nurl = "mqtt://127.0.0.1"\n'
        '[[locks]]\nid = "parcel-room"\ndriver = "sim"\n'
        "options = { latency = 0.5, keypad_slots = 100 }\n"
    )
    [lock] = load_gateway_config(path, env={}).locks
    driver = build(fake_clock, lock, source=str(path))
    assert driver.lock_id == "parcel-room"
    await driver.stop()
