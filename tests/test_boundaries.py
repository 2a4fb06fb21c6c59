"""Import boundaries between the hub, the cloud and the wire contract (docs/architecture.md)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli import DELEGATED

ROOT = Path(__file__).resolve().parent.parent
# The demo assembles hub, cloud and broker in one process: the one part of the gateway that
# may import the cloud side (docs/architecture.md, "Import boundaries").
DEMO = ROOT / "gateway" / "demo"
# Shared pieces the cloud side takes from the gateway package. A new entry is a design
# decision: add it here and in docs/architecture.md, or move the piece where both can use it.
CLOUD_USES_FROM_GATEWAY = {
    "gateway.errors",
    "gateway.httpbody",
    "gateway.keyfile",
    "gateway.logs",
    "gateway.metrics",
    "gateway.notify",
    "gateway.sync.client",
}
# What the wire contract may import besides the standard library and itself.
PROTOCOL_DEPENDENCIES = {"cryptography", "pydantic", "pydantic_core", "typing_extensions"}
# Libraries that a hub or a fuzzer importing the wire contract must not pay for.
HEAVY = {"aiohttp", "sqlalchemy", "aiosqlite", "aiomqtt", "structlog", "paho", "gateway"}
PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


def modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])  # the file's package
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """Every module an import in ``path`` names, relative ones resolved, lazy ones included."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            yield node.lineno, module
            # `from cloud_sync import service` names cloud_sync.service.
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


def test_the_gateway_imports_only_the_protocol_from_cloud_sync() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in modules("gateway")
        if not path.is_relative_to(DEMO)
        for line, name in imported(path)
        if within(name, "cloud_sync")
        and name != "cloud_sync"  # `from cloud_sync import protocol`: its names are checked
        and not within(name, "cloud_sync.protocol")
    ]
    assert not wrong, "\n".join(wrong)


def test_the_cli_reaches_the_cloud_and_the_demo_only_through_its_lazy_dispatch() -> None:
    # `lockhub cloud ...` and `lockhub demo` import their module by name, only when they run.
    targets = {module for module, _ in DELEGATED.values()}
    assert targets == {"cloud_sync.cli", "gateway.demo"}
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in modules("gateway")
        if not path.is_relative_to(DEMO)
        for line, name in imported(path)
        if within(name, "gateway.demo")
    ]
    assert not wrong, "\n".join(wrong)


def test_the_cloud_takes_only_the_listed_shared_pieces_from_the_gateway() -> None:
    used = {
        name
        for path in modules("cloud_sync")
        for _, name in imported(path)
        if within(name, "gateway")
    }
    # `from gateway.logs import configure_logging` also yields gateway.logs.configure_logging.
    modules_used = {name for name in used if any(name == m for m in CLOUD_USES_FROM_GATEWAY)}
    unlisted = {
        name
        for name in used
        if not any(name == m or name.startswith(f"{m}.") for m in CLOUD_USES_FROM_GATEWAY)
    }
    assert not unlisted, f"cloud_sync imports more of gateway: {sorted(unlisted)}"
    assert modules_used == CLOUD_USES_FROM_GATEWAY, "an entry is no longer used: drop it"


def test_the_protocol_imports_only_stdlib_cryptography_and_pydantic() -> None:
    allowed = set(sys.stdlib_module_names) | PROTOCOL_DEPENDENCIES | {"__future__"}
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in modules("cloud_sync/protocol")
        for line, name in imported(path)
        if name.split(".")[0] not in allowed and not within(name, "cloud_sync.protocol")
    ]
    assert not wrong, "\n".join(wrong)


def loaded_by(module: str) -> set[str]:
    """The modules a fresh interpreter holds after importing ``module``."""
    # A fresh interpreter: this test process has imported everything already.
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = set(json.loads(result.stdout))
    assert module in loaded  # the probe did import it
    return loaded


@pytest.mark.parametrize("module", ["cloud_sync.protocol", "cloud_sync.protocol.envelope"])
def test_importing_the_protocol_loads_no_heavy_library(module: str) -> None:
    loaded = loaded_by(module)
    assert not {name for name in loaded if name.partition(".")[0] in HEAVY}


def test_the_cloud_cli_loads_the_store_and_the_daemon_only_for_the_commands_using_them() -> None:
    # `lockhub cloud --help` took 2.5 s when the CLI imported these up front.
    loaded = loaded_by("cloud_sync.cli")
    heavy = {"sqlalchemy", "alembic", "karrio", "cloud_sync.daemon", "cloud_sync.store"}
    assert not {name for name in loaded if name in heavy or name.partition(".")[0] in heavy}
