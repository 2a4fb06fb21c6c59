"""`lockhub demo` runs every step against the real parts and exits 0 only if all checked out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway import demo


def test_demo_passes_every_step_and_never_prints_the_code(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "demo", "--dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"all {len(demo.STEPS)} steps checked out" in done.stdout
    for code in (demo.DEMO_CODE, demo.KEYPAD_CODE):
        assert code not in done.stdout + done.stderr
        for name in ("gateway.toml", "hub/hub.db", "up-records.json", "down-commands.json"):
            assert (tmp_path / "d" / name).exists()
            assert code.encode() not in (tmp_path / "d" / name).read_bytes()


def test_demo_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    assert demo.main(["--dir", str(tmp_path)]) == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"


async def test_a_failing_step_fails_the_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken(_: demo.Demo) -> str:
        raise demo.DemoFailedError("the lock did not answer")

    monkeypatch.setattr(demo, "STEPS", [("a step that fails", broken)])
    assert await demo.run(tmp_path) == 1
    assert "FAILED: the lock did not answer" in capsys.readouterr().out


async def test_demo_steps_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await demo.run(tmp_path) == 0
    out = capsys.readouterr().out
    assert out.count("      ok: ") == len(demo.STEPS)
    assert "replay refused (replayed), forgery refused (bad_signature)" in out
    assert "then 423 Retry-After" in out
    assert "3 proofs of delivery" in out
