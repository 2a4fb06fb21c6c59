"""The carrier desk of a running cloud: the key ring, one HTTP session, providers, routes.

Carrier partners' credentials are sealed under the ``[carriers]`` key ring; without one
(``key_file``, ``keys``, or ``<state_dir>/carrier-keys.toml`` made by ``lockhub cloud init``)
the carrier routes are off and the cloud says so in its log.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import structlog

from .carriers.credentials import KeyRing, generate_key
from .carriers.errors import CredentialError
from .config import CloudConfig

if TYPE_CHECKING:
    from .carriers.service import Carriers
    from .store import CloudStore

log = structlog.get_logger(__name__)

DEFAULT_KEY_FILE = "carrier-keys.toml"
FIRST_KEY_ID = "k1"
# Carrier APIs answer in seconds; the per-call limits of [carriers] bound each call anyway.
SESSION_TIMEOUT = aiohttp.ClientTimeout(total=60)


def default_key_file(state_dir: Path) -> Path:
    """Where ``lockhub cloud init`` keeps the carrier credential key ring."""
    return state_dir / DEFAULT_KEY_FILE


def create_key_file(path: Path) -> bool:
    """Write a new key ring (one key, active) at ``path`` (0600); False if it exists."""
    text = f'active = "{FIRST_KEY_ID}"\n\n[keys]\n{FIRST_KEY_ID} = "{generate_key()}"\n'
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    return True


def key_ring(config: CloudConfig) -> KeyRing:
    """The ring ``[carriers]`` names, else the state dir's; CredentialError if neither."""
    section = config.carriers
    if section.key_file is not None or section.keys is not None:
        return KeyRing.from_section(section)
    path = default_key_file(config.cloud.state_dir)
    if path.exists():
        return KeyRing.load(path)
    raise CredentialError(
        f"no carrier key ring: run `lockhub cloud init` to create {path}, "
        "or set [carriers] key_file or keys"
    )


def register_providers() -> None:
    """Import the connectors that register themselves (karrio only when installed)."""
    import cloud_sync.carriers.uber_direct  # noqa: PLC0415 - registers "uber_direct"

    with contextlib.suppress(ImportError):  # the karrio extra is optional
        from loguru import logger  # noqa: PLC0415 - karrio logs through loguru

        # loguru's default sink prints karrio's lines raw on stderr, between our JSON
        # events; the adapter adds its own sink for the statuses it needs.
        with contextlib.suppress(ValueError):
            logger.remove(0)
        import cloud_sync.carriers.karrio_adapter  # noqa: F401, PLC0415 - "karrio:*"


@dataclass
class Desk:
    """The running desk: carriers and the session their connectors share."""

    carriers: Carriers
    session: aiohttp.ClientSession

    async def close(self) -> None:
        """Close the shared HTTP session."""
        await self.session.close()


async def open_desk(config: CloudConfig, store: CloudStore) -> Desk | None:
    """The carrier desk over ``store``, or None (logged) when no key ring is configured."""
    try:
        ring = key_ring(config)
    except CredentialError as exc:
        log.warning("carriers.disabled", reason=str(exc))
        return None
    from .carriers.service import Carriers, carrier_store  # noqa: PLC0415 - only when serving

    register_providers()
    session = aiohttp.ClientSession(timeout=SESSION_TIMEOUT)
    carriers = Carriers.build(
        carrier_store(store), config.carriers, ring=ring, session=session, tasks=store.get_task
    )
    return Desk(carriers, session)


__all__ = ["Desk", "create_key_file", "default_key_file", "key_ring", "open_desk"]
