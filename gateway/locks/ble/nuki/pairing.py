"""Pairing with a Nuki lock in pairing mode over the pairing GDIO (plain frames).

The five steps of the Smart Lock API: public keys, the authenticator over both keys and the
lock's challenge, the Authorization Data, the lock's Authorization-ID (whose authenticator we
check) and our confirmation; the lock ends with Status COMPLETE.
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Callable

from bleak import BleakClient
from bleak.exc import BleakError

from . import codec, messages
from .codec import Command
from .errors import NukiBusyError, NukiError, NukiFrameError, NukiRefusedError, error_for
from .messages import IdType, StatusCode
from .session import Credentials

# Each pairing step is one round trip; the lock computes a key agreement in well under 5 s.
PAIRING_STEP_TIMEOUT = 5.0


class _PlainInbox:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[int, bytes] | NukiError] = asyncio.Queue()
        self._reassembler = codec.Reassembler(encrypted=False)

    def on_data(self, _: object, data: bytearray) -> None:
        try:
            for frame in self._reassembler.feed(bytes(data)):
                self.queue.put_nowait(codec.decode_plain(frame))
        except NukiFrameError as exc:
            self._reassembler.reset()
            self.queue.put_nowait(exc)


class _Exchange:
    def __init__(self, client: BleakClient, inbox: _PlainInbox, within: float) -> None:
        self._client = client
        self._inbox = inbox
        self._within = within

    async def ask(self, command: int, payload: bytes, expected: int) -> bytes:
        try:
            await self._client.write_gatt_char(
                codec.PAIRING_GDIO, codec.encode_plain(command, payload), response=True
            )
        except (BleakError, OSError) as exc:
            raise NukiBusyError(f"writing to the lock failed: {exc}") from exc
        try:
            async with asyncio.timeout(self._within):
                item = await self._inbox.queue.get()
        except TimeoutError:
            raise NukiBusyError("the lock did not answer during pairing") from None
        if isinstance(item, NukiError):
            raise item
        reply, body = item
        if reply == Command.ERROR_REPORT:
            raise error_for(*messages.decode_error_report(body))
        if reply != expected:
            raise NukiFrameError(f"pairing: expected 0x{expected:04X}, got 0x{reply:04X}")
        return body


async def pair_lock(
    client: BleakClient,
    *,
    name: str,
    app_id: int,
    private_key: bytes | None = None,
    random: Callable[[int], bytes] = os.urandom,
    within: float = PAIRING_STEP_TIMEOUT,
) -> Credentials:
    """Pair over ``client`` (connected to a lock in pairing mode); the new credentials."""
    private = private_key if private_key is not None else random(codec.KEY_BYTES)
    own_public = codec.public_key(private)
    inbox = _PlainInbox()
    try:
        await client.start_notify(codec.PAIRING_GDIO, inbox.on_data)
    except (BleakError, OSError) as exc:
        raise NukiBusyError(f"cannot subscribe to the pairing service: {exc}") from exc
    talk = _Exchange(client, inbox, within)
    lock_public = messages.decode_key(
        await talk.ask(
            Command.REQUEST_DATA, messages.request_data(Command.PUBLIC_KEY), Command.PUBLIC_KEY
        )
    )
    key = codec.shared_key(lock_public, private)
    nonce = await talk.ask(Command.PUBLIC_KEY, own_public, Command.CHALLENGE)
    tag = codec.authenticator(key, own_public, lock_public, messages.decode_challenge(nonce))
    nonce = await talk.ask(Command.AUTHORIZATION_AUTHENTICATOR, tag, Command.CHALLENGE)
    data = messages.AuthorizationData(IdType.APP, app_id, name, random(codec.CHALLENGE_BYTES))
    tag = codec.authenticator(key, data.signed_part(), messages.decode_challenge(nonce))
    reply = await talk.ask(
        Command.AUTHORIZATION_DATA, tag + data.signed_part(), Command.AUTHORIZATION_ID
    )
    their_tag, granted = messages.decode_authorization_id(reply)
    expected = codec.authenticator(key, granted.signed_part(), data.client_nonce)
    if not codec.authenticators_match(expected, their_tag):
        raise NukiRefusedError("the lock's Authorization-ID does not authenticate: not paired")
    auth_id = struct.pack("<I", granted.auth_id)
    tag = codec.authenticator(key, auth_id, granted.lock_nonce)
    done = await talk.ask(Command.AUTHORIZATION_ID_CONFIRMATION, tag + auth_id, Command.STATUS)
    if messages.decode_status(done) != StatusCode.COMPLETE:
        raise NukiFrameError("pairing did not complete")
    return Credentials(granted.auth_id, key, app_id, lock_public)
