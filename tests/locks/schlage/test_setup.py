"""Building a Schlage driver from its section, and pairing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.errors import ConfigError
from gateway.locks import LockRefusedError, LockState
from gateway.locks.bridges.schlage import (
    CREDENTIAL_KIND,
    SchlageAuthError,
    account,
    build,
    pair,
)
from gateway.locks.bridges.schlage import Endpoints as SchlageEndpoints
from gateway.locks.registry import DriverContext, build_driver

from .conftest import LOCK_ID, PASSWORD, USERNAME, ScriptedUI, Served, section


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    return "\n".join(exc.value.lines)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"device_id": "a", "name": "b"}, "not both"),
        ({"password_file": "/x"}, "needs username"),
        ({"pasword_file": "/x"}, "unknown option"),
        ({"api_base": "ftp://x"}, "api_base"),
        ({"read_timeout": 0}, "read_timeout"),
    ],
)
def test_bad_options_name_the_field(
    context: DriverContext, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        build(section(options), context)
    assert message in problems(exc)
    assert "test.toml: locks[front-door]" in problems(exc)


def test_credentials_are_required(context: DriverContext) -> None:
    with pytest.raises(ConfigError) as exc:
        build(section({"device_id": "abc"}), context)
    assert "lockhub gateway pair schlage --lock front-door" in problems(exc)


def test_a_device_is_required(context: DriverContext, password_file: Path) -> None:
    options = {"username": USERNAME, "password_file": str(password_file)}
    with pytest.raises(ConfigError) as exc:
        build(section(options), context)
    assert "device_id or name" in problems(exc)


@pytest.mark.parametrize(
    ("mode", "content", "message"), [(0o644, "s3cr3t-value", "chmod 600"), (0o600, " \n", "empty")]
)
def test_password_file_must_be_private_and_set(
    context: DriverContext, tmp_path: Path, mode: int, content: str, message: str
) -> None:
    path = tmp_path / "pw"
    path.write_text(content)
    path.chmod(mode)
    options = {"device_id": "a", "username": USERNAME, "password_file": str(path)}
    with pytest.raises(ConfigError) as exc:
        build(section(options), context)
    assert message in problems(exc)
    assert content.strip() == "" or content not in problems(exc)


def test_missing_password_file(context: DriverContext, tmp_path: Path) -> None:
    options = {"device_id": "a", "username": USERNAME, "password_file": str(tmp_path / "no")}
    with pytest.raises(ConfigError) as exc:
        build(section(options), context)
    assert "cannot read" in problems(exc)


def test_the_registry_builds_it(
    served: Served, context: DriverContext, password_file: Path
) -> None:
    options = served.options(name="Front Door", username=USERNAME, password_file=str(password_file))
    driver = build_driver(
        section(options), now=context.now, sleep=context.sleep, state_dir=context.state_dir
    )
    assert (driver.lock_id, driver.vendor, driver.has_keypad) == (LOCK_ID, "schlage", True)


def test_one_session_per_account() -> None:
    endpoints = SchlageEndpoints("http://127.0.0.1:9/v1", "http://127.0.0.1:9")
    first = account(USERNAME, PASSWORD, endpoints)
    assert account(USERNAME.upper(), PASSWORD, endpoints) is first
    assert account(USERNAME, "new password", endpoints) is not first


async def test_pairing_stores_credentials_and_the_chosen_lock(
    served: Served, context: DriverContext
) -> None:
    back = served.cloud.add_lock("Back Door")
    ui = ScriptedUI([USERNAME, PASSWORD, "2"])
    summary = await pair(section(served.options()), context, ui)
    assert back.device_id in summary
    assert ui.asked[1] == ("Schlage account password", True)
    assert any("Back Door" in line for line in ui.said)
    assert all(PASSWORD not in line for line in [*ui.said, summary])
    saved = context.credentials().load(LOCK_ID, CREDENTIAL_KIND)
    assert saved == {"username": USERNAME, "password": PASSWORD, "device_id": back.device_id}
    # The paired lock builds from the stored credentials alone.
    driver = build(section(served.options()), context)
    await driver.start()
    try:
        back.lock_state = 0
        assert (await driver.status()).state is LockState.UNLOCKED
    finally:
        await driver.stop()


async def test_pairing_with_a_named_lock_asks_nothing_more(
    served: Served, context: DriverContext
) -> None:
    served.cloud.add_lock("Back Door")
    ui = ScriptedUI([PASSWORD])
    options = served.options(name="Front Door", username=USERNAME)
    assert served.lock.device_id in await pair(section(options), context, ui)
    assert len(ui.asked) == 1


@pytest.mark.parametrize("answer", ["7", "x"])
async def test_pairing_refuses_a_bad_choice(
    served: Served, context: DriverContext, answer: str
) -> None:
    served.cloud.add_lock("Back Door")
    with pytest.raises(LockRefusedError, match="no lock number"):
        await pair(section(served.options()), context, ScriptedUI([USERNAME, PASSWORD, answer]))


async def test_pairing_an_unknown_lock(served: Served, context: DriverContext) -> None:
    ui = ScriptedUI([USERNAME, PASSWORD])
    with pytest.raises(LockRefusedError, match="no matching"):
        await pair(section(served.options(name="Garage")), context, ui)


async def test_pairing_with_a_wrong_password(served: Served, context: DriverContext) -> None:
    ui = ScriptedUI([USERNAME, "wrong"])
    with pytest.raises(SchlageAuthError):
        await pair(section(served.options()), context, ui)
    assert ui.said == ["Schlage refused this e-mail and password."]
    assert context.credentials().load(LOCK_ID, CREDENTIAL_KIND) is None


async def test_a_lock_missing_from_the_account(
    served: Served, context: DriverContext, password_file: Path
) -> None:
    options = served.options(name="Garage", username=USERNAME, password_file=str(password_file))
    driver = build(section(options), context)
    with pytest.raises(LockRefusedError, match="no Schlage lock 'Garage'"):
        await driver.start()
