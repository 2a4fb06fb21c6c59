"""Fixtures for CLI tests: the example configs pointed at a temporary state directory."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GATEWAY_EXAMPLE = REPO / "config" / "gateway.example.toml"
CLOUD_EXAMPLE = REPO / "config" / "cloud.example.toml"


@pytest.fixture
def hub_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The hub's state_dir, set through the documented environment override."""
    state = tmp_path / "hub-state"
    monkeypatch.setenv("LOCKHUB_HUB__STATE_DIR", str(state))
    return state


@pytest.fixture
def cloud_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cloud's state_dir, set through the documented environment override."""
    state = tmp_path / "cloud-state"
    monkeypatch.setenv("LOCKHUB_CLOUD_CLOUD__STATE_DIR", str(state))
    return state
