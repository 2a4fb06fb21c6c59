"""Fixtures for config tests: the shipped examples and a writer for config files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GATEWAY_EXAMPLE = REPO / "config" / "gateway.example.toml"
CLOUD_EXAMPLE = REPO / "config" / "cloud.example.toml"
# A valid base64url raw 32-byte value to stand in for a cloud command key.
COMMAND_KEY = "i4nxvhct-umfwW-BQpVhyA0lRsuxjgHCPNksw-ouSTI"

MINIMAL_GATEWAY = """\
[hub]
id = "hub-1"
state_dir = "state"

[mqtt]
url = "mqtt://broker"
"""

WriteConfig = Callable[[str | bytes], Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write text or bytes to ``<tmp>/etc/lockhub.toml`` and return its path."""

    def write(content: str | bytes) -> Path:
        path = tmp_path / "etc" / "lockhub.toml"
        path.parent.mkdir(exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
        return path

    return write
