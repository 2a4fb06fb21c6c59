"""``lockhub gateway pair nuki_ble``: pair with the lock in pairing mode, store the result."""

from __future__ import annotations

import os

import structlog

from ....config import LockSection
from ...pairing import PairUI
from ...registry import DriverContext, parse_options
from .logbook import LOG_MARK_KIND
from .options import CREDENTIAL_KIND, NukiBleOptions, credentials_to_dict
from .pairing import pair_lock

log = structlog.get_logger(__name__)


async def pair(section: LockSection, context: DriverContext, ui: PairUI) -> str:
    """Pair with the lock (in pairing mode) and store the credentials encrypted."""
    options = parse_options(NukiBleOptions, section, context.source)
    store = context.credentials()
    transport = context.ble_transport()
    ui.say("Hold the lock's button for 5 seconds until its LED ring lights (pairing mode).")
    await ui.ask("Press Enter when the ring is lit")
    app_id = int.from_bytes(os.urandom(4), "little")
    async with transport.connection(options.address) as client:
        creds = await pair_lock(client, name=options.app_name, app_id=app_id)
    store.save(section.id, CREDENTIAL_KIND, credentials_to_dict(creds))
    store.delete(section.id, LOG_MARK_KIND)
    log.info("nuki.paired", lock_id=section.id, auth_id=creds.auth_id)
    return f"paired with Nuki {options.address} as authorization {creds.auth_id}"
