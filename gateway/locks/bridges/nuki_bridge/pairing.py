"""Pairing a ``nuki_bridge`` lock: get the bridge's API token by its button, store it."""

from __future__ import annotations

from ....config import LockSection
from ...pairing import PairUI
from ...registry import DriverContext, parse_options
from ..nuki_bridge_client import BridgeRefusedError
from .driver import find_device
from .options import TOKEN_KIND, NukiBridgeOptions, bridge_client, read_token_file


async def pair(section: LockSection, context: DriverContext, ui: PairUI) -> str:
    """Get the bridge's API token by its button (or check token_file); store it encrypted."""
    options = parse_options(NukiBridgeOptions, section, context.source)
    name = f"{options.host}:{options.port}"
    async with bridge_client(options, context, None) as client:
        if options.token_file is not None:
            client.token = read_token_file(options.token_file, context.source, section.id)
            ui.say(f"token_file is set: checking it against the Nuki Bridge at {name}")
        else:
            ui.say(f"Press the button on the Nuki Bridge at {name} now (it waits 30 seconds).")
            reply = await client.auth_token()
            if not reply.success or reply.token is None:
                raise BridgeRefusedError(
                    "the bridge gave no token: its button was not pressed within 30 s",
                    status=403,
                )
            client.token = reply.token
        device = find_device(await client.devices(), options.nuki_id, options.device_type)
        if options.token_file is None:
            context.credentials().save(section.id, TOKEN_KIND, {"token": client.token})
        auth = client.auth.value if client.auth else "unknown"
    return f"lock {section.id}: {device.name!r} (nukiId {device.nuki_id}) via {name}, {auth} tokens"
