"""Pairing a ``schlage`` lock: log in once, pick the lock, store the account encrypted."""

from __future__ import annotations

import asyncio

from pyschlage import Lock

from ....config import LockSection
from ...driver import LockRefusedError
from ...pairing import PairUI
from ...registry import DriverContext, parse_options
from .account import Endpoints, SchlageAccount
from .errors import SchlageAuthError
from .options import CREDENTIAL_KIND, SchlageOptions


async def pair(section: LockSection, context: DriverContext, ui: PairUI) -> str:
    """Log in once, pick the lock, store the account's credentials encrypted; a summary line."""
    options = parse_options(SchlageOptions, section, context.source)
    username = options.username or (await ui.ask("Schlage account e-mail")).strip()
    password = await ui.ask("Schlage account password", secret=True)
    session = SchlageAccount(
        username,
        password,
        Endpoints(options.api_base, options.cognito_endpoint, options.read_timeout),
    )
    try:
        devices = await asyncio.to_thread(session.call, session.api.locks)
    except SchlageAuthError:
        ui.say("Schlage refused this e-mail and password.")
        raise
    device = await _choose(devices, options, ui)
    store = context.credentials()
    store.save(
        section.id,
        CREDENTIAL_KIND,
        {"username": username, "password": password, "device_id": device.device_id},
    )
    return f"paired Schlage lock {device.name!r} ({device.device_id}) with lock {section.id}"


async def _choose(devices: list[Lock], options: SchlageOptions, ui: PairUI) -> Lock:
    wanted = [
        d
        for d in devices
        if options.device_id in (None, d.device_id) and options.name in (None, d.name)
    ]
    if len(wanted) == 1:
        return wanted[0]
    if not wanted:
        raise LockRefusedError("no matching Schlage lock on this account")
    for number, device in enumerate(wanted, 1):
        ui.say(f"{number}. {device.name} ({device.model_name}, {device.device_id})")
    answer = (await ui.ask(f"Which lock (1-{len(wanted)})?")).strip()
    if not answer.isdigit() or not 1 <= int(answer) <= len(wanted):
        raise LockRefusedError(f"no lock number {answer!r}")
    return wanted[int(answer) - 1]
