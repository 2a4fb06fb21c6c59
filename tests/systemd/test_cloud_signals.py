"""The cloud service as a real process: SIGTERM stops it cleanly, SIGHUP re-reads its config."""

from __future__ import annotations

import contextlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra.services import free_port

from ..daemon.test_process import REPO, env

pytestmark = pytest.mark.slow

STOP_SECONDS = 15.0
WAIT_SECONDS = 10.0
POLL_SECONDS = 0.05
CLOUD_TOML = """
[cloud]
state_dir = "{state}"
database_url = "sqlite+aiosqlite:///{state}/cloud.db"
signing_kid = "cloud-1"

[mqtt]
url = "mqtt://127.0.0.1:1"

[api]
listen = "127.0.0.1:{port}"
"""
# `lockhub cloud run` as the CLI runs it, plus the config path that SIGHUP re-reads.
RUN_WITH_RELOAD = """
import asyncio, sys
from pathlib import Path
from gateway.logs import configure_logging
from cloud_sync.config import load_cloud_config
from cloud_sync.daemon import run_cloud
path = Path(sys.argv[1])
configure_logging("info", "json")
asyncio.run(run_cloud(load_cloud_config(path), config_path=path))
"""


def cloud(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "cloud", *args],
        env=env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def until_logged(log: Path, event: str, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = [e for e in events(log) if e["event"] == event]
        if found:
            return found[-1]
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"no {event} logged: {log.read_text()}"
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def cloud_process(tmp_path: Path, argv: list[str]) -> Iterator[subprocess.Popen[bytes]]:
    config = tmp_path / "cloud.toml"
    config.write_text(CLOUD_TOML.format(state=tmp_path / "state", port=free_port()))
    cloud("init", "--config", str(config))
    cloud("migrate", "--config", str(config))
    with (tmp_path / "cloud.log").open("wb") as out:
        process = subprocess.Popen(
            [*argv, str(config)], env=env(), cwd=REPO, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        until_logged(tmp_path / "cloud.log", "cloud.api_listening", process)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()


def integrity(tmp_path: Path) -> str:
    with contextlib.closing(sqlite3.connect(tmp_path / "state" / "cloud.db")) as db:
        (result,) = db.execute("PRAGMA integrity_check").fetchone()
    return str(result)


def test_lockhub_cloud_run_survives_sighup_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "cloud.log"
    argv = [sys.executable, "-m", "gateway.cli", "cloud", "run", "--config"]
    with cloud_process(tmp_path, argv) as process:
        process.send_signal(signal.SIGHUP)  # `systemctl reload` must never stop the service
        until_logged(log, "config.reloaded", process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_SECONDS) == 0
    assert events(log)[-1]["event"] == "cloud.stopped"
    assert integrity(tmp_path) == "ok"


def test_sighup_rereads_the_config_and_keeps_it_when_the_file_is_bad(tmp_path: Path) -> None:
    log, config = tmp_path / "cloud.log", tmp_path / "cloud.toml"
    with cloud_process(tmp_path, [sys.executable, "-c", RUN_WITH_RELOAD]) as process:
        good = config.read_text()
        config.write_text(good + "\n[api]\nlisten = 1\n")
        process.send_signal(signal.SIGHUP)
        refused = until_logged(log, "config.reload_refused", process)
        assert refused["source"] == str(config)
        config.write_text(good)
        process.send_signal(signal.SIGHUP)
        assert until_logged(log, "config.reloaded", process)["log_level"] == "info"
        config.write_text(good + '\n[log]\nlevel = "warning"\n')
        process.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_SECONDS) == 0
        assert events(log)[-1]["event"] != "cloud.stopped"  # an info line, now filtered
    assert integrity(tmp_path) == "ok"
