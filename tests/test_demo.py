"""`lockhub demo` plays the whole day on real parts and exits 0 only if every step checked out."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import demo
from gateway.demo.logfiles import PARTS
from tests.infra.services import MosquittoBroker

pytestmark = pytest.mark.slow

# What the demo leaves in its work directory, relative to it.
PRODUCED = (
    "cloud.toml",
    "gateway.toml",
    "cloud/cloud.db",
    "hub/hub.db",
    "tasks.json",
    *(f"logs/{part}.log" for part in PARTS),
)


def test_the_demo_plays_every_step_and_lists_what_it_produced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "day"
    assert demo.main(["--dir", str(workdir)]) == 0
    out = capsys.readouterr().out
    total = len(demo.STEPS)
    for number, (title, _) in enumerate(demo.STEPS, start=1):
        assert f"[{number:2}/{total}] {title} ..." in out
    assert out.count("        ok (") == total
    assert "FAILED" not in out
    assert re.search(rf"all {total} steps checked out in \d+\.\d s", out)
    (label,) = workdir.glob("label-*.pdf")
    (costs,) = workdir.glob("costs-*.csv")
    assert label.read_bytes().startswith(b"%PDF-")
    assert costs.read_text().startswith("BilledCost,")
    for path in (*(workdir / name for name in PRODUCED), label, costs):
        assert path.is_file(), path
        assert str(path) in out, f"the summary does not list {path}"
    assert "records 1.." in out
    assert "each exactly once" in out
    assert "423 Retry-After" in out
    assert "lock_keypad" in out
    assert "exported once" in out
    for log in ("hub", "cloud", "broker"):
        assert (workdir / "logs" / f"{log}.log").stat().st_size > 0


@pytest.mark.mqtt
def test_the_demo_runs_on_an_existing_broker_and_cuts_only_the_hubs_link(
    tmp_path: Path, mosquitto: MosquittoBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main(["--dir", str(tmp_path / "day"), "--mqtt-url", mosquitto.url]) == 0
    out = capsys.readouterr().out
    assert f"existing broker at {mosquitto.url}" in out
    assert "shared group lockhub-demo" in out
    assert "MQTT 5 ([mqtt] protocol auto)" in out
    assert "hub's uplink cut" in out
    assert f"all {len(demo.STEPS)} steps checked out" in out


def test_the_demo_refuses_a_broker_url_it_cannot_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert demo.main(["--dir", str(tmp_path), "--mqtt-url", "mqtts://127.0.0.1:1"]) == 1
    assert "--mqtt-url must be mqtt://host[:port]" in capsys.readouterr().out


def test_lockhub_demo_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "is not empty" in done.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


async def test_a_failing_step_fails_the_demo_and_stops_what_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stopped: list[str] = []

    async def starts_something(state: demo.Demo) -> str:
        async def stop() -> None:
            stopped.append("part")

        state.cleanup.append(stop)
        return "started"

    async def broken(_: demo.Demo) -> str:
        raise demo.DemoFailedError("the lock did not answer")

    async def never(_: demo.Demo) -> str:
        raise AssertionError("a step after a failure ran")

    steps = [("starts", starts_something), ("fails", broken), ("never", never)]
    monkeypatch.setattr(demo, "STEPS", steps)
    assert await demo.run(tmp_path) == 1
    out = capsys.readouterr().out
    assert "FAILED: the lock did not answer" in out
    assert "[ 3/3]" not in out
    assert stopped == ["part"]


async def test_an_unexpected_error_fails_the_demo_with_its_trace_in_a_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def buggy(_: demo.Demo) -> str:
        raise KeyError("pod_id")

    monkeypatch.setattr(demo, "STEPS", [("buggy", buggy)])
    assert await demo.run(tmp_path) == 1
    assert "FAILED: KeyError: 'pod_id'" in capsys.readouterr().out
    assert "Traceback" in (tmp_path / "logs" / "other.log").read_text()
