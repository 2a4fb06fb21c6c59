"""``lockhub``: init and identity end to end, exit codes, errors on stderr, help everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import __version__
from gateway.cli import main

from .conftest import GATEWAY_EXAMPLE, REPO

CONFIG = ["--config", str(GATEWAY_EXAMPLE)]


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, str]:
    assert main(argv) == 0
    result: dict[str, str] = json.loads(capsys.readouterr().out)
    return result


def test_real_process_init_then_identity(tmp_path: Path) -> None:
    env = {**os.environ, "LOCKHUB_HUB__STATE_DIR": str(tmp_path / "state")}
    command = [sys.executable, "-m", "gateway.cli", "gateway"]
    init = subprocess.run(
        [*command, "init", *CONFIG], env=env, cwd=REPO, capture_output=True, text=True, check=False
    )
    assert init.returncode == 0, init.stderr
    assert "created the keys of hub hub-0001" in init.stdout
    shown = subprocess.run(
        [*command, "identity", *CONFIG],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert set(json.loads(shown.stdout)) == {"hub_id", "signing_key", "sealing_key"}


def test_init_twice_keeps_identity(hub_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gateway", "init", *CONFIG]) == 0
    assert f"created the keys of hub hub-0001 in {hub_state}" in capsys.readouterr().out
    first = run_json(capsys, ["gateway", "identity", *CONFIG])
    assert main(["gateway", "init", *CONFIG]) == 0
    assert "already exist" in capsys.readouterr().out
    assert run_json(capsys, ["gateway", "identity", *CONFIG]) == first
    assert first["hub_id"] == "hub-0001"
    assert oct(hub_state.stat().st_mode & 0o777) == "0o700"


def test_identity_before_init_fails_clearly(
    hub_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gateway", "identity", *CONFIG]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lockhub: error: no hub keys in {hub_state}")
    assert "run `lockhub gateway init --config FILE` first" in err


def test_exposed_key_file_fails_with_chmod_advice(
    hub_state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gateway", "init", *CONFIG]) == 0
    (hub_state / "sealing.key").chmod(0o644)
    assert main(["gateway", "identity", *CONFIG]) == 1
    assert f"run `chmod 600 {hub_state / 'sealing.key'}`" in capsys.readouterr().err


def test_missing_config_exits_78_with_next_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "none.toml"
    assert main(["gateway", "init", "--config", str(path)]) == 78
    assert capsys.readouterr().err.splitlines() == [
        f"lockhub: error: {path}: no such file",
        "lockhub: hint: create it from config/gateway.example.toml, "
        "or pass --config FILE or set $LOCKHUB_CONFIG",
    ]


def test_invalid_config_exits_78_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(GATEWAY_EXAMPLE.read_text().replace('driver = "sim"', 'driver = "simm"'))
    assert main(["gateway", "identity", "--config", str(path)]) == 78
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"lockhub: error: {path}: locks[0].driver: must be 'sim'")
    assert err[1].startswith("lockhub: hint: fix the setting above")


def test_config_path_from_environment(
    hub_state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOCKHUB_CONFIG", str(GATEWAY_EXAMPLE))
    assert main(["gateway", "init"]) == 0
    assert str(hub_state) in capsys.readouterr().out


def test_default_config_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if Path("/etc/lockhub/gateway.toml").exists():
        pytest.skip("this machine has a real hub config")
    monkeypatch.delenv("LOCKHUB_CONFIG", raising=False)
    assert main(["gateway", "identity"]) == 78
    assert "lockhub: error: /etc/lockhub/gateway.toml: no such file" in capsys.readouterr().err


def test_process_arguments_are_the_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["lockhub", "--version"])
    assert main() == 0
    assert capsys.readouterr().out.strip() == f"lockhub {__version__}"


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["gateway", "--help"],
        ["gateway", "init", "--help"],
        ["gateway", "identity", "--help"],
        ["cloud", "--help"],
        ["cloud", "init", "--help"],
        ["cloud", "identity", "--help"],
    ],
)
def test_help_on_every_command(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lockhub")
    assert "--help" in out


@pytest.mark.parametrize(
    "argv", [[], ["gateway"], ["gateway", "pair"], ["nope"], ["gateway", "run", "--bad"]]
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: lockhub" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("module", "command", "message"),
    [
        ("cloud_sync.cli", "cloud", "pip install 'lockhub[cloud]'"),
        ("gateway.demo", "demo", "the demo is not part of this installation"),
    ],
)
def test_missing_optional_parts_are_explained(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    module: str,
    command: str,
    message: str,
) -> None:
    # None in sys.modules makes the import fail exactly like an absent module.
    monkeypatch.setitem(sys.modules, module, None)
    assert main([command, "init"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lockhub: error: ")
    assert message in err


def test_gateway_cli_does_not_import_the_cloud_side() -> None:
    code = "import sys, gateway.cli; print('cloud_sync.cli' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
