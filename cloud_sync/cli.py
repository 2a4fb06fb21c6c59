"""``lockhub cloud``: set up the cloud side (reached through ``gateway.cli``'s dispatcher).

Exit codes as for ``lockhub``: 0 ok, 1 runtime failure, 2 usage error, 78 config error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from gateway.logs import configure_logging

from .config import DEFAULT_CONFIG_PATH, CloudConfig, ConfigError, load_cloud_config
from .desk import create_key_file, default_key_file
from .errors import CloudError
from .identity import IdentityError, init_cloud_identity, load_cloud_identity

if TYPE_CHECKING:
    # The service, the store and the daemon (SQLAlchemy, alembic, aiohttp, karrio) load in
    # the commands that use them: `--help` and usage errors answer in well under a second.
    from .service import CloudService
    from .store import ChainAccepted, HubRow

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 78  # sysexits.h EX_CONFIG: a restart cannot fix a wrong config
CONFIG_ENV = "LOCKHUB_CLOUD_CONFIG"
EXAMPLE_CONFIG = "config/cloud.example.toml"

Handler = Callable[[argparse.Namespace], int]
T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``lockhub cloud`` with ``argv``; return the exit code."""
    try:
        namespace = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse exits on --help and usage errors
        return int(exc.code or EXIT_OK)
    handler: Handler = namespace.handler
    # Logs go to stderr: stdout carries only what a command prints (an API key, JSON).
    configure_logging("info", "auto")
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
    except (IdentityError, CloudError) as exc:
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
        ("migrate", "create or upgrade the database schema (run before `run`)", _migrate),
        ("run", "run the cloud service in the foreground (until SIGTERM)", _run),
    ):
        _with_config(commands.add_parser(name, help=summary, description=summary), handler)
    hub = commands.add_parser("hub", help="manage registered hubs")
    hub_commands = hub.add_subparsers(dest="hub_command", required=True)
    add = hub_commands.add_parser("add", help="register a hub and its public keys")
    add.add_argument("--id", required=True, help="the hub's id (its [hub] id)")
    # A base64url key may start with "-": pass it as --signing-key=KEY.
    add.add_argument(
        "--signing-key",
        required=True,
        help="base64url Ed25519 key (identity); use --signing-key=KEY",
    )
    add.add_argument(
        "--sealing-key",
        required=True,
        help="base64url X25519 key (identity); use --sealing-key=KEY",
    )
    add.add_argument(
        "--tenant",
        action="append",
        default=[],
        help="a tenant that may create windows on this hub (repeat for several; none by "
        "default: run `hub add` again with --tenant to grant one later)",
    )
    _with_config(add, _hub_add)
    accept = hub_commands.add_parser(
        "accept-chain",
        help="after investigating a broken record chain: continue it from a seq",
        description="Re-anchor a hub's broken record chain at --from-seq (the seq the "
        "chain_broken alert names, normally) and chain the records it held back, applying "
        "their effects once. See docs/operations.md before running it.",
    )
    accept.add_argument("--id", required=True, help="the hub's id")
    accept.add_argument(
        "--from-seq",
        type=_positive,
        required=True,
        help="the first record seq to accept as the chain's continuation",
    )
    _with_config(accept, _hub_accept_chain)
    keys = commands.add_parser("keys", help="manage tenant API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create an API key; printed once")
    create.add_argument("--tenant", required=True, help="the tenant the key serves")
    _with_config(create, _keys_create)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a record seq (1 or more), not {text!r}")
    return value


def _with_config(command: argparse.ArgumentParser, handler: Handler) -> None:
    command.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"cloud config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG_PATH})",
    )
    command.set_defaults(handler=handler)


def _path(namespace: argparse.Namespace) -> Path:
    return Path(namespace.config or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def _load(namespace: argparse.Namespace) -> CloudConfig:
    return load_cloud_config(_path(namespace))


def _init(namespace: argparse.Namespace) -> int:
    config = _load(namespace)
    _, created = init_cloud_identity(config.cloud.state_dir, config.cloud.signing_kid)
    state = "created" if created else "already exists; nothing changed"
    print(f"the command-signing key {config.cloud.signing_kid} {state} in {config.cloud.state_dir}")
    if config.carriers.key_file is None and config.carriers.keys is None:
        ring = default_key_file(config.cloud.state_dir)
        made = create_key_file(ring)
        print(f"the carrier credential key ring {ring} {'created' if made else 'already exists'}")
    print("next: run `lockhub cloud identity` and add the key to each hub's [cloud] command_keys")
    return EXIT_OK


def _identity(namespace: argparse.Namespace) -> int:
    config = _load(namespace)
    keys = load_cloud_identity(config.cloud.state_dir, config.cloud.signing_kid)
    print(json.dumps({"kid": keys.kid, "signing_key": keys.signing_public}, indent=2))
    return EXIT_OK


def _migrate(namespace: argparse.Namespace) -> int:
    from .store import migrate  # noqa: PLC0415 - see the TYPE_CHECKING imports

    config = _load(namespace)
    revision = asyncio.run(migrate(config.cloud.database_url))
    print(f"the database is at schema revision {revision}")
    return EXIT_OK


async def _with_service(config: CloudConfig, work: Callable[[CloudService], Awaitable[T]]) -> T:
    from .daemon import open_service  # noqa: PLC0415 - see the TYPE_CHECKING imports

    store, service = await open_service(config)
    try:
        return await work(service)
    finally:
        await store.close()


def _hub_add(namespace: argparse.Namespace) -> int:
    config = _load(namespace)

    async def add(service: CloudService) -> HubRow:
        return await service.add_hub(
            namespace.id, namespace.signing_key, namespace.sealing_key, tenants=namespace.tenant
        )

    hub = asyncio.run(_with_service(config, add))
    if namespace.tenant:
        print(f"hub {hub.hub_id} registered for tenants {', '.join(namespace.tenant)}")
    else:
        print(f"hub {hub.hub_id} registered; no tenant may create windows on it yet")
        print(
            f"lockhub: hint: grant one with `lockhub cloud hub add --id {hub.hub_id} ... "
            "--tenant T` (the same keys again)",
            file=sys.stderr,
        )
    return EXIT_OK


def _hub_accept_chain(namespace: argparse.Namespace) -> int:
    config = _load(namespace)

    async def accept(service: CloudService) -> ChainAccepted:
        return await service.store.accept_chain(namespace.id, namespace.from_seq)

    done = asyncio.run(_with_service(config, accept))
    print(
        f"the record chain of hub {done.hub_id} (epoch {done.epoch}) continues from seq "
        f"{done.from_seq}: {done.chained} held-back records chained, next seq {done.next_seq}"
    )
    if done.superseded:
        print(
            f"{done.superseded} records the hub rewrote were moved aside to epoch "
            f"{done.superseded_epoch}; their effects stand"
        )
    if done.broken_at is not None:
        print(
            f"lockhub: warning: the chain broke again at seq {done.broken_at}: investigate "
            "that record too",
            file=sys.stderr,
        )
    return EXIT_OK


def _keys_create(namespace: argparse.Namespace) -> int:
    config = _load(namespace)

    async def create(service: CloudService) -> str:
        return await service.create_api_key(namespace.tenant)

    key = asyncio.run(_with_service(config, create))
    # Printed once, to stdout only: the cloud keeps a hash.
    print(key)
    print(f"an API key for tenant {namespace.tenant}; it is shown only now", file=sys.stderr)
    return EXIT_OK


def _run(namespace: argparse.Namespace) -> int:
    from .daemon import run_cloud  # noqa: PLC0415 - see the TYPE_CHECKING imports

    path = _path(namespace)
    config = load_cloud_config(path)
    configure_logging(config.log.level, config.log.format)
    asyncio.run(run_cloud(config, config_path=path))
    return EXIT_OK
