"""Fixtures for the fault loops: a cloud database (SQLite or PostgreSQL) and a prepared site.

The deployment itself lives in ``deployment.py``; the figures table printed at the end of
the run in ``figures.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.infra.services import MosquittoBroker

from .deployment import Site
from .figures import print_summary
from .stores import cloud_database_url


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """Print every loop's figures in one table at the end of the run."""
    del exitstatus  # the figures are printed whatever the outcome
    print_summary(terminalreporter, config)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite in tmp_path, or PostgreSQL with a fresh schema in the session's database."""
    return cloud_database_url(request, tmp_path)


@pytest.fixture
async def site(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, mosquitto: MosquittoBroker
) -> AsyncIterator[Site]:
    """A prepared deployment (nothing running yet); every process is killed at the end."""
    deployment = Site(tmp_path, mosquitto, database_url)
    deployment.figures_sink = request.node.user_properties
    try:
        deployment.prepare()
        await deployment.open()
        yield deployment
    finally:
        await deployment.close()
