"""The ``lockhub`` command: ``gateway`` subcommands here; ``cloud`` and ``demo`` load on demand.

Exit codes: 0 ok, 1 runtime failure, 2 usage error, 78 config error (EX_CONFIG of sysexits.h).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .config import DEFAULT_CONFIG_PATH, GatewayConfig, load_gateway_config
from .errors import ConfigError, GatewayError
from .identity import init_identity, load_identity
from .logs import configure_logging

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
# sysexits.h EX_CONFIG: lets systemd's RestartPreventExitStatus= stop restarting a hub whose
# config is wrong, since a restart cannot fix it.
EXIT_CONFIG = 78
CONFIG_ENV = "LOCKHUB_CONFIG"
EXAMPLE_CONFIG = "config/gateway.example.toml"
# Commands served by other modules, imported only when used: the gateway must not import
# cloud_sync beyond its protocol, and the cloud side may be installed without its extras.
DELEGATED = {
    "cloud": (
        "cloud_sync.cli",
        "the cloud side is not installed; run pip install 'lockhub[cloud]'",
    ),
    "demo": ("gateway.demo", "the demo is not part of this installation"),
}

Handler = Callable[[argparse.Namespace], int]
# `lockhub gateway pair <vendor>`: the words (lockcli.PAIR_DRIVERS maps them to drivers);
# the driver names themselves are accepted too, as error messages name drivers.
PAIR_VENDORS = ("nuki", "nuki-bridge", "yale", "yale-cloud", "schlage")
PAIR_DRIVER_NAMES = ("nuki_ble", "nuki_bridge", "yale_ble", "yale_cloud")
# A scan longer than 5 minutes is a mistake (the adapter is the hub's to use).
MAX_SCAN_SECONDS = 300.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lockhub`` with ``argv`` (default: the process arguments); return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in DELEGATED:
        return _delegate(args[0], args[1:])
    try:
        namespace = build_parser().parse_args(args)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return _exit_code(exc)
    handler: Handler = namespace.handler
    # Logs go to stderr: stdout carries only what a command prints (JSON for identity).
    configure_logging("info", "auto")
    try:
        return handler(namespace)
    except ConfigError as exc:
        _report(exc.lines)
        _hint(_config_hint(Path(exc.source)))
        return EXIT_CONFIG
    except GatewayError as exc:
        _report([str(exc)])
        return EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command registered so far."""
    parser = argparse.ArgumentParser(
        prog="lockhub", description="Smart-lock hub gateway for delivery sites, and its cloud side."
    )
    parser.add_argument("--version", action="version", version=f"lockhub {__version__}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="{gateway,cloud,demo}")
    gateway = groups.add_parser(
        "gateway", help="manage this hub", description="Manage this hub's keys and config."
    )
    commands = gateway.add_subparsers(dest="command", required=True)
    _add_command(
        commands, "init", "create this hub's keys in state_dir (keeps existing keys)", _init
    )
    _add_command(commands, "identity", "print this hub's id and public keys as JSON", _identity)
    _add_command(commands, "run", "run the hub daemon in the foreground (until SIGTERM)", _run)
    scan = _add_command(
        commands, "scan", "look for Bluetooth locks nearby (stop the daemon first)", _scan
    )
    scan.add_argument("--seconds", type=float, default=10.0, help="how long to listen (10)")
    scan.add_argument("--all", action="store_true", help="list every device heard, not only locks")
    scan.add_argument("--json", action="store_true", help="print JSON")
    locks = _add_command(
        commands, "locks", "show the state of every configured lock (asks the daemon)", _locks
    )
    locks.add_argument("--json", action="store_true", help="print JSON")
    pair = _add_command(
        commands, "pair", "pair a configured lock with this hub (stop the daemon first)", _pair
    )
    pair.add_argument(
        "vendor",
        choices=[*PAIR_VENDORS, *PAIR_DRIVER_NAMES],
        metavar="{" + ",".join(PAIR_VENDORS) + "}",
        help="which pairing procedure (or the lock's driver name)",
    )
    pair.add_argument("--lock", required=True, metavar="ID", help="the lock's id in the config")
    groups.add_parser("cloud", help="the cloud side (lockhub cloud --help)", add_help=False)
    groups.add_parser("demo", help="run the local demo (lockhub demo --help)", add_help=False)
    return parser


def _add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    handler: Handler,
) -> argparse.ArgumentParser:
    command = commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:])
    command.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"hub config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH})",
    )
    command.set_defaults(handler=handler)
    return command


def _config_path(namespace: argparse.Namespace) -> Path:
    return Path(namespace.config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def _load(namespace: argparse.Namespace) -> GatewayConfig:
    return load_gateway_config(_config_path(namespace))


def _init(namespace: argparse.Namespace) -> int:
    config = _load(namespace)
    state_dir = config.hub.state_dir
    _, created = init_identity(state_dir)
    if created:
        print(f"created the keys of hub {config.hub.id} in {state_dir}")
    else:
        print(f"the keys of hub {config.hub.id} already exist in {state_dir}; nothing changed")
    print("next: run `lockhub gateway identity` and register the hub with the cloud")
    return EXIT_OK


def _identity(namespace: argparse.Namespace) -> int:
    config = _load(namespace)
    keys = load_identity(config.hub.state_dir)
    identity = {
        "hub_id": config.hub.id,
        "signing_key": keys.signing_public,
        "sealing_key": keys.sealing_public,
    }
    print(json.dumps(identity, indent=2))
    return EXIT_OK


def _run(namespace: argparse.Namespace) -> int:
    path = _config_path(namespace)
    config = load_gateway_config(path)
    configure_logging(config.log.level, config.log.format)
    # Imported here: `init` and `identity` stay fast and need none of the daemon's parts.
    from .daemon import run_gateway  # noqa: PLC0415
    from .store import StoreError  # noqa: PLC0415

    try:
        asyncio.run(run_gateway(config, source=str(path)))
    except StoreError as exc:
        _report([f"the hub's store failed: {exc}"])
        return EXIT_FAILURE
    return EXIT_OK


def _scan(namespace: argparse.Namespace) -> int:
    from .lockcli import print_scan, scan  # noqa: PLC0415 - bleak only for this command

    if not 0 < namespace.seconds <= MAX_SCAN_SECONDS:
        _report([f"--seconds must be between 0 and {MAX_SCAN_SECONDS:g}"])
        return EXIT_USAGE
    rows = asyncio.run(scan(_load(namespace), namespace.seconds, show_all=namespace.all))
    print_scan(rows, as_json=namespace.json)
    return EXIT_OK


def _locks(namespace: argparse.Namespace) -> int:
    from .lockcli import fetch_locks, print_locks  # noqa: PLC0415

    print_locks(asyncio.run(fetch_locks(_load(namespace))), as_json=namespace.json)
    return EXIT_OK


def _pair(namespace: argparse.Namespace) -> int:
    from .lockcli import pair  # noqa: PLC0415

    path = _config_path(namespace)
    config = load_gateway_config(path)
    try:
        summary = asyncio.run(pair(config, namespace.vendor, namespace.lock, str(path)))
    except KeyboardInterrupt:
        _report(["pairing interrupted; nothing was saved"])
        return EXIT_FAILURE
    print(summary)
    return EXIT_OK


def _delegate(command: str, argv: list[str]) -> int:
    module_name, missing = DELEGATED[command]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        _report([f"{missing} (cannot import {exc.name})"])
        return EXIT_FAILURE
    return int(module.main(argv))


def _exit_code(exc: SystemExit) -> int:
    # argparse exits with 0 (help, version) or 2 (usage), never with a message as the code.
    return int(exc.code or EXIT_OK)


def _config_hint(path: Path) -> str:
    if path.exists():
        return f"fix the setting above; {EXAMPLE_CONFIG} documents every key"
    return f"create it from {EXAMPLE_CONFIG}, or pass --config FILE or set ${CONFIG_ENV}"


def _report(lines: Sequence[str]) -> None:
    for line in lines:
        print(f"lockhub: error: {line}", file=sys.stderr)


def _hint(text: str) -> None:
    print(f"lockhub: hint: {text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())  # pragma: no cover - run by the subprocess test, outside coverage
