"""Fixtures shared with the fault loops (a prepared site), the cloud backends the campaign
runs on, and the figures table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The fault loops' deployment fixture, reused as it is: real processes, set up by the CLI.
from tests.faults.conftest import site  # noqa: F401 - a fixture, used by name
from tests.faults.figures import print_summary
from tests.faults.stores import cloud_database_url

from .powercut import build_shim

# The cloud databases the campaign and the power cuts run against: SQLite in `make test`
# (the fault loops already cover PostgreSQL there); `make soak` adds postgres.
BACKENDS = os.environ.get("LOCKHUB_SOAK_BACKENDS", "sqlite").split(",")


def _backend_param(name: str) -> object:
    return pytest.param(name, marks=pytest.mark.postgres) if name == "postgres" else name


@pytest.fixture(params=[_backend_param(name.strip()) for name in BACKENDS])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The cloud's database for one run: ``sqlite`` or ``postgres`` (LOCKHUB_SOAK_BACKENDS)."""
    return cloud_database_url(request, tmp_path)


@pytest.fixture(scope="session")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The power-cut shim (powercut.c), compiled once per session."""
    return build_shim(tmp_path_factory.mktemp("powercut"))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """Print the campaign's figures in one table at the end of the run."""
    del exitstatus  # the figures are printed whatever the outcome
    print_summary(terminalreporter, config)
