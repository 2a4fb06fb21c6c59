"""``lockhub cloud init|identity`` through the gateway's dispatcher."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cloud_sync.cli import main as cloud_main
from gateway.cli import main

from .conftest import CLOUD_EXAMPLE

CONFIG = ["--config", str(CLOUD_EXAMPLE)]


def test_init_then_identity(cloud_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cloud", "init", *CONFIG]) == 0
    assert "cloud-2026 created in" in capsys.readouterr().out
    assert main(["cloud", "identity", *CONFIG]) == 0
    first = json.loads(capsys.readouterr().out)
    assert set(first) == {"kid", "signing_key"}
    assert first["kid"] == "cloud-2026"
    assert main(["cloud", "init", *CONFIG]) == 0
    assert "already exists; nothing changed" in capsys.readouterr().out
    assert main(["cloud", "identity", *CONFIG]) == 0
    assert json.loads(capsys.readouterr().out) == first
    assert (cloud_state / "command-signing.key").stat().st_mode & 0o777 == 0o600


def test_identity_before_init(cloud_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cloud", "identity", *CONFIG]) == 1
    assert "run `lockhub cloud init --config FILE` first" in capsys.readouterr().err


def test_config_error_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(CLOUD_EXAMPLE.read_text().replace("cloud-2026", "cloud 2026"))
    assert main(["cloud", "init", "--config", str(path)]) == 78
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"lockhub: error: {path}: cloud.signing_kid: must be 1-64")
    assert err[1].startswith("lockhub: hint: compare with config/cloud.example.toml")


def test_config_path_from_environment(
    cloud_state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOCKHUB_CLOUD_CONFIG", str(CLOUD_EXAMPLE))
    assert main(["cloud", "init"]) == 0
    assert str(cloud_state) in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv", [["cloud"], ["cloud", "nope"], ["cloud", "hub", "add"], ["cloud", "keys"]]
)
def test_unknown_or_incomplete_commands_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert "usage: lockhub cloud" in capsys.readouterr().err


def test_cloud_cli_reads_process_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["lockhub cloud", "--help"])
    assert cloud_main() == 0
    assert "usage: lockhub cloud" in capsys.readouterr().out


def test_keys_create_prints_only_the_key_on_stdout(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LOCKHUB_CLOUD_CLOUD__STATE_DIR": str(tmp_path),
        "LOCKHUB_CLOUD_CLOUD__DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cloud.db",
    }
    base = [sys.executable, "-m", "gateway.cli", "cloud"]
    for command in (["init"], ["migrate"], ["keys", "create", "--tenant", "acme"]):
        done = subprocess.run(
            [*base, *command, "--config", str(CLOUD_EXAMPLE)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"lhk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\n", done.stdout)
    assert "api_key.created" in done.stderr
