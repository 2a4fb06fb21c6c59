"""Pairing a ``yale_ble`` lock: store its offline key and slot, typed in or fetched."""

from __future__ import annotations

import structlog

from ....config import LockSection
from ...driver import LockRefusedError
from ...pairing import PairUI
from ...registry import DriverContext, parse_options
from .options import CREDENTIAL_KIND, MAX_KEY_SLOT, OfflineCredentials, YaleBleOptions

log = structlog.get_logger(__name__)


async def pair(section: LockSection, context: DriverContext, ui: PairUI) -> str:
    """Store the lock's offline key and slot: typed in, or fetched from the Yale/August cloud."""
    options = parse_options(YaleBleOptions, section, context.source)
    store = context.credentials()
    ui.say("A Yale/August lock works offline with an offline key and its slot.")
    key = await ui.ask(
        "Offline key (32 hex digits) if you have it, or Enter to fetch it from your account",
        secret=True,
    )
    if key.strip():
        creds = await _typed(ui, key.strip(), options, section.id)
    else:
        creds = await _fetched(ui, options)
    store.save(section.id, CREDENTIAL_KIND, creds.to_store())
    log.info("yale.paired", lock_id=section.id, slot=creds.slot)
    return f"yale_ble {section.id}: offline key for slot {creds.slot} stored ({creds.name})"


async def _typed(ui: PairUI, key: str, options: YaleBleOptions, name: str) -> OfflineCredentials:
    answer = (await ui.ask(f"Offline key slot (0-{MAX_KEY_SLOT})")).strip()
    if not answer.isdigit():
        raise LockRefusedError(f"an offline key slot is a number 0-{MAX_KEY_SLOT}")
    return OfflineCredentials.checked(key, int(answer), options.serial or "", name)


async def _fetched(ui: PairUI, options: YaleBleOptions) -> OfflineCredentials:
    # Imported here: only pairing needs the cloud client (and yalexs with it).
    from ...bridges.yale_cloud import fetch_offline_key  # noqa: PLC0415

    serial = options.serial or (await ui.ask("The lock's serial number (in the app)")).strip()
    offline = await fetch_offline_key(ui, serial=serial, api_base=options.cloud_api_base)
    return OfflineCredentials.checked(offline.key, offline.slot, offline.serial, offline.name)
