"""``lockhub cloud``: set up the cloud side (reached through ``gateway.cli``'s dispatcher).

Exit codes as for ``lockhub``: 0 ok, 1 runtime failure, 2 usage error, 78 config error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import DEFAULT_CONFIG_PATH, CloudConfig, ConfigError, load_cloud_config
from .identity import IdentityError, init_cloud_identity, load_cloud_identity

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 78  # sysexits.h EX_CONFIG: a restart cannot fix a wrong config
CONFIG_ENV = "LOCKHUB_CLOUD_CONFIG"
EXAMPLE_CONFIG = "config/cloud.example.toml"

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lockhub cloud`` with ``argv``; return the exit code."""
    try:
        namespace = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse exits on --help and usage errors
        return int(exc.code or EXIT_OK)
    handler: Handler = namespace.handler
    try:
        return handler(namespace)
    except ConfigError as exc:
        for line in exc.lines:
            print(f"lockhub: error: {line}", file=sys.stderr)
        print(
            f"lockhub: hint: compare with {EXAMPLE_CONFIG}, which documents every key",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    except IdentityError as exc:
        print(f"lockhub: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``lockhub cloud``."""
    parser = argparse.ArgumentParser(
        prog="lockhub cloud", description="Set up the lockhub cloud side."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, summary, handler in (
        ("init", "create the command-signing key in state_dir (keeps an existing key)", _init),
        ("identity", "print the command-signing key id and public key as JSON", _identity),
    ):
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument(
            "--config",
            type=Path,
            default=None,
            help=f"cloud config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH})",
        )
        command.set_defaults(handler=handler)
    return parser


def _load(namespace: argparse.Namespace) -> CloudConfig:
    path = namespace.config or Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
    return load_cloud_config(path)


def _init(namespace: argparse.Namespace) -> int:
    config = _load(namespace)
    _, created = init_cloud_identity(config.cloud.state_dir, config.cloud.signing_kid)
    state = "created" if created else "already exists; nothing changed"
    print(f"the command-signing key {config.cloud.signing_kid} {state} in {config.cloud.state_dir}")
    print("next: run `lockhub cloud identity` and add the key to each hub's [cloud] command_keys")
    return EXIT_OK


def _identity(namespace: argparse.Namespace) -> int:
    config = _load(namespace)
    keys = load_cloud_identity(config.cloud.state_dir, config.cloud.signing_kid)
    print(json.dumps({"kid": keys.kid, "signing_key": keys.signing_public}, indent=2))
    return EXIT_OK
