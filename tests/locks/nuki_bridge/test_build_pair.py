"""build() options and secrets, pairing by the bridge's button, and the callback route."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.errors import ConfigError
from gateway.locks.bridges import nuki_bridge
from gateway.locks.bridges.fake_nuki_bridge import FakeNukiBridge
from gateway.locks.bridges.nuki_bridge import NukiBridgeLock, pair
from gateway.locks.bridges.nuki_bridge_client import BridgeRefusedError
from gateway.locks.callbacks import CallbackRegistry
from gateway.locks.registry import build_driver

from .conftest import NUKI_ID, TOKEN, Sleeps, context, now, section, token_file


class ScriptedUI:
    """The person at the terminal: reads what is said, presses the button when told."""

    def __init__(self, bridge: FakeNukiBridge, *, press: bool = True) -> None:
        self.bridge, self.press, self.said = bridge, press, list[str]()

    def say(self, message: str) -> None:
        self.said.append(message)
        if self.press and "Press the button" in message:
            asyncio.get_running_loop().call_later(0.05, self.bridge.press_button)

    async def ask(self, prompt: str, *, secret: bool = False) -> str:
        raise AssertionError("pairing a bridge asks nothing")


def test_build_through_the_registry(bridge: FakeNukiBridge, tmp_path: Path) -> None:
    lock = section(bridge, token_file=str(token_file(tmp_path)))
    driver = build_driver(lock, now=now, sleep=asyncio.sleep, state_dir=tmp_path)
    assert isinstance(driver, NukiBridgeLock)
    assert (driver.lock_id, driver.vendor, driver.has_keypad) == ("front-door", "nuki", False)


@pytest.mark.parametrize(
    ("options", "field", "words"),
    [
        ({"device_type": 2}, "device_type", "must be"),
        ({"callback_url_base": "https://hub:8080"}, "callback_url_base", "no TLS"),
        ({"callback_url_base": "http://hub:8080/?a=1"}, "callback_url_base", "no TLS"),
        ({"auth": "none"}, "auth", "must be"),
        ({"host": "http://bridge"}, "host", "match"),
        ({"port": 0}, "port", "greater than"),
        ({"nuki_id": -1}, "nuki_id", "greater than"),
        ({"token": "abc"}, "token", "unknown option"),
        ({"callback_url_base": "http://" + "h" * 240}, "callback_url_base", "254"),
    ],
)
def test_bad_options_name_the_field(
    *,
    bridge: FakeNukiBridge,
    tmp_path: Path,
    registry: CallbackRegistry,
    sleeps: Sleeps,
    options: dict[str, Any],
    field: str,
    words: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        nuki_bridge.build(section(bridge, **options), context(tmp_path, registry, sleeps))
    [line] = caught.value.lines
    assert line.startswith(f"test.toml: locks[front-door].options.{field}: ")
    assert words in line


@pytest.mark.parametrize(
    ("content", "mode", "words"),
    [
        (TOKEN, 0o644, "chmod 600"),
        ("", 0o600, "does not hold one token"),
        ("two words", 0o600, "does not hold one token"),
        ("x" * 100, 0o600, "does not hold one token"),
    ],
)
def test_token_files_must_be_private_and_hold_one_token(
    *,
    bridge: FakeNukiBridge,
    tmp_path: Path,
    registry: CallbackRegistry,
    sleeps: Sleeps,
    content: str,
    mode: int,
    words: str,
) -> None:
    path = token_file(tmp_path, content, mode)
    with pytest.raises(ConfigError, match=words):
        nuki_bridge.build(
            section(bridge, token_file=str(path)), context(tmp_path, registry, sleeps)
        )


def test_a_missing_token_file(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    lock = section(bridge, token_file=str(tmp_path / "absent"))
    with pytest.raises(ConfigError, match="cannot read"):
        nuki_bridge.build(lock, context(tmp_path, registry, sleeps))


def test_the_callback_secret_is_kept_and_not_in_config(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    lock = section(bridge, token_file=str(token_file(tmp_path)), callback_url_base="http://h:8080/")
    first = nuki_bridge.build(lock, context(tmp_path, registry, sleeps))
    second = nuki_bridge.build(lock, context(tmp_path, registry, sleeps))
    assert isinstance(first, NukiBridgeLock)
    assert isinstance(second, NukiBridgeLock)
    assert first._callback_url == second._callback_url
    assert first._callback_url is not None
    assert first._callback_url.startswith("http://h:8080/v1/callbacks/front-door?secret=")
    secret = first._callback_url.rsplit("=", 1)[1]
    for path in (tmp_path / "credentials").iterdir():
        assert secret.encode() not in path.read_bytes()  # encrypted at rest


async def test_pairing_by_the_button_stores_the_token(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    ui = ScriptedUI(bridge)
    summary = await pair(section(bridge), context(tmp_path, registry, sleeps), ui)
    assert summary == (
        f"lock front-door: 'Front door' (nukiId {NUKI_ID}) via 127.0.0.1:{bridge.port}, "
        "encrypted tokens"
    )
    assert TOKEN not in summary
    assert all(TOKEN not in line for line in ui.said)
    driver = nuki_bridge.build(section(bridge), context(tmp_path, registry, sleeps))
    await driver.start()  # the stored token works
    await driver.stop()


async def test_pairing_without_the_button(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    bridge.auth_wait = 0.05
    with pytest.raises(BridgeRefusedError, match="button was not pressed"):
        await pair(
            section(bridge), context(tmp_path, registry, sleeps), ScriptedUI(bridge, press=False)
        )
    assert not (tmp_path / "credentials" / "front-door.nuki_bridge.cred").exists()


async def test_pairing_with_auth_disabled(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    bridge.auth_enabled = False
    with pytest.raises(BridgeRefusedError, match="403"):
        await pair(section(bridge), context(tmp_path, registry, sleeps), ScriptedUI(bridge))


async def test_pairing_with_a_token_file_checks_it(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    lock = section(bridge, token_file=str(token_file(tmp_path)), auth="hashed")
    ui = ScriptedUI(bridge)
    summary = await pair(lock, context(tmp_path, registry, sleeps), ui)
    assert summary.endswith("hashed tokens")
    assert "token_file is set" in ui.said[0]
    assert not (tmp_path / "credentials").exists()


async def test_pairing_names_the_devices_when_the_id_is_wrong(
    bridge: FakeNukiBridge, tmp_path: Path, registry: CallbackRegistry, sleeps: Sleeps
) -> None:
    with pytest.raises(BridgeRefusedError, match="1001 \\('Front door', type 0\\)"):
        await pair(
            section(bridge, nuki_id=5), context(tmp_path, registry, sleeps), ScriptedUI(bridge)
        )


async def test_the_route_without_a_driver_is_404(hub_api: str) -> None:
    target = f"{hub_api}/v1/callbacks/nowhere?secret=x"
    async with aiohttp.ClientSession() as http, http.post(target, json={}) as response:
        assert (response.status, await response.json()) == (404, {"error": "unknown_lock"})


async def test_the_route_hands_over_body_and_secret_and_caps_the_size(
    hub_api: str, registry: CallbackRegistry
) -> None:
    seen: list[tuple[bytes, dict[str, str]]] = []

    async def handler(body: bytes, meta: Any) -> None:
        seen.append((body, dict(meta)))

    registry.register("front-door", handler)
    route = f"{hub_api}/v1/callbacks/front-door"
    async with aiohttp.ClientSession() as http:
        headers = {"X-Lockhub-Callback-Secret": "spoof"}
        async with http.post(f"{route}?secret=s3", data=b'{"a": 1}', headers=headers) as response:
            assert response.status == 204
        async with http.post(route, data=json.dumps({"pad": "x" * 9000})) as response:
            assert response.status == 413
    [(body, meta)] = seen
    assert body == b'{"a": 1}'
    assert meta["x-lockhub-callback-secret"] == "s3"
