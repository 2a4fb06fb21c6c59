"""Pairing: the offline key typed in, or fetched from a fake Yale/August cloud; then used."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.errors import ConfigError
from gateway.locks.ble.transport import BleTransport
from gateway.locks.ble.yale import CREDENTIAL_KIND, build, pair
from gateway.locks.ble.yale_emulator import YaleLockEmulator
from gateway.locks.bridges.fake_august import FakeAugustCloud
from gateway.locks.driver import LockRefusedError, LockState
from gateway.locks.registry import DriverContext

from .conftest import KEY, SERIAL, context_for, now, section_for

EMAIL = "owner@example.com"
PASSWORD = "correct horse battery"  # noqa: S105 - the fake account's password
Answer = str | Callable[[], str]


class ScriptedUI:
    """A PairUI answering from a script; records what it was asked (and whether as a secret)."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, bool]] = []
        self.said: list[str] = []

    def say(self, message: str) -> None:
        self.said.append(message)

    async def ask(self, prompt: str, *, secret: bool = False) -> str:
        self.asked.append((prompt, secret))
        answer = self.answers.pop(0)
        return answer() if callable(answer) else answer


@pytest.fixture
async def cloud() -> AsyncIterator[FakeAugustCloud]:
    fake = FakeAugustCloud()
    await fake.start()
    owner = fake.add_account(EMAIL, PASSWORD)
    fake.add_lock(
        "A6697750D607098BAE8D6BAA11EF8063",
        owner=owner,
        serial=SERIAL,
        name="Front door",
        offline_key=KEY.upper(),
        offline_slot=2,
    )
    yield fake
    await fake.close()


def stored(tmp_path: Path) -> dict[str, object] | None:
    context = DriverContext(now=now, sleep=None, source="t", state_dir=tmp_path)  # type: ignore[arg-type]
    return context.credentials().load("front-door", CREDENTIAL_KIND)


async def test_pair_from_the_cloud_then_drive_the_lock(
    tmp_path: Path, transport: BleTransport, emulator: YaleLockEmulator, cloud: FakeAugustCloud
) -> None:
    emulator.keys = {2: bytes.fromhex(KEY)}  # the lock knows the key in slot 2 only
    section = section_for(emulator.address, cloud_api_base=cloud.base_url)
    context = context_for(tmp_path, transport)
    ui = ScriptedUI("", SERIAL, "august", EMAIL, PASSWORD, lambda: cloud.sent_codes[EMAIL])
    summary = await pair(section, context, ui)
    assert "slot 2" in summary
    assert KEY not in summary
    assert KEY not in " ".join(ui.said)
    assert ui.asked[0][1] is True  # the key prompt hides what is typed
    assert stored(tmp_path) == {"key": KEY, "slot": 2, "serial": SERIAL, "name": "Front door"}
    driver = build(section, context)
    await driver.start()
    assert (await driver.status()).state is LockState.LOCKED
    await driver.stop()


async def test_pair_with_a_typed_key(tmp_path: Path, transport: BleTransport) -> None:
    section = section_for("C0:FF:EE:00:AA:01", serial=SERIAL)
    ui = ScriptedUI(f" {KEY.upper()} ", "1")
    summary = await pair(section, context_for(tmp_path, transport), ui)
    assert summary.startswith("yale_ble front-door: offline key for slot 1")
    assert stored(tmp_path) == {"key": KEY, "slot": 1, "serial": SERIAL, "name": "front-door"}


@pytest.mark.parametrize(
    ("key", "slot", "match"),
    [("abc", "1", "32 hex digits"), (KEY, "x", "number"), (KEY, "256", "0-255")],
)
async def test_pair_refuses_a_bad_key_or_slot(
    tmp_path: Path, transport: BleTransport, key: str, slot: str, match: str
) -> None:
    section = section_for("C0:FF:EE:00:AA:02")
    with pytest.raises(LockRefusedError, match=match):
        await pair(section, context_for(tmp_path, transport), ScriptedUI(key, slot))
    assert stored(tmp_path) is None


async def test_damaged_credentials_ask_for_pairing(tmp_path: Path, transport: BleTransport) -> None:
    context = context_for(tmp_path, transport)
    context.credentials().save("front-door", CREDENTIAL_KIND, {"key": KEY})
    driver = build(section_for("C0:FF:EE:00:AA:03"), context)
    with pytest.raises(LockRefusedError, match="damaged"):
        await driver.start()


def test_bad_options_name_the_field(tmp_path: Path, transport: BleTransport) -> None:
    with pytest.raises(ConfigError, match=r"locks\[front-door\]\.options\.address"):
        build(section_for("not-a-mac"), context_for(tmp_path, transport))
    with pytest.raises(ConfigError, match="unknown option"):
        build(section_for("C0:FF:EE:00:AA:04", pin="1"), context_for(tmp_path, transport))
