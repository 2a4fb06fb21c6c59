"""``lockhub gateway run`` as a real process: serves, stops cleanly on SIGTERM, logs JSON."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from gateway.clock import FLOOR_KV_KEY, parse_floor
from gateway.identity import KEY_FILES
from tests.infra.services import free_port

from .conftest import ADMIN_TOKEN, write_config

REPO = Path(__file__).resolve().parents[2]
LOCKHUB = [sys.executable, "-m", "gateway.cli", "gateway"]
# A cold start imports the daemon and opens the store: well under a second; allow ten.
START_SECONDS = 10.0
STOP_SECONDS = 5.0


def env() -> dict[str, str]:
    """The environment without systemd's markers, so the log format follows the TTY rule."""
    return {k: v for k, v in os.environ.items() if k not in {"JOURNAL_STREAM", "INVOCATION_ID"}}


def lockhub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOCKHUB, *args], env=env(), cwd=REPO, capture_output=True, text=True, check=False
    )


def status_of(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - loopback http
            code: int = answer.status
            return code
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def key_material(state: Path) -> list[str]:
    """Every form a secret could take in a log line: base64url, hex, the admin token."""
    forms = [ADMIN_TOKEN]
    for name in KEY_FILES:
        raw = (state / name).read_bytes()
        forms += [base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex()]
    return forms


@pytest.mark.slow
def test_run_serves_until_sigterm_and_exits_cleanly(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port)
    assert lockhub("init", "--config", str(config)).returncode == 0
    process = subprocess.Popen(
        [*LOCKHUB, "run", "--config", str(config)],
        env=env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while status_of(base + "/healthz") != 200:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "no /healthz answer"
            time.sleep(0.05)
        assert status_of(base + "/readyz") == 200
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=STOP_SECONDS)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
    assert process.returncode == 0, err

    with contextlib.closing(sqlite3.connect(tmp_path / "state" / "hub.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (floor,) = db.execute("SELECT value FROM kv WHERE key = ?", (FLOOR_KV_KEY,)).fetchone()
    assert parse_floor(floor) is not None

    lines = [json.loads(line) for line in err.splitlines()]  # not a TTY: one JSON object a line
    events = [line["event"] for line in lines]
    assert "api.listening" in events
    assert events[-1] == "gateway.stopped"
    logged = out + err
    for secret in key_material(tmp_path / "state"):
        assert secret not in logged


def test_a_lock_missing_its_options_exits_78_naming_the_field(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=free_port(), driver="nuki_ble")
    assert lockhub("init", "--config", str(config)).returncode == 0
    try:
        result = subprocess.run(
            [*LOCKHUB, "run", "--config", str(config)],
            env=env(),
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            timeout=STOP_SECONDS * 2,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the process hung after its config error")
    assert result.returncode == 78
    # A Nuki lock needs its BLE address: the error names the file and the field.
    assert "locks[front-door].options.address" in result.stderr
