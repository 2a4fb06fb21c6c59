"""An authorised conversation with one Nuki lock over an open BLE link (thin I/O).

:class:`Inbox` turns the lock's indications into decrypted messages (set up once per
physical connection); :class:`NukiSession` writes encrypted commands and reads the answers
the Smart Lock API specifies, turning Error Reports into the package's errors.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from bleak import BleakClient
from bleak.exc import BleakError

from . import codec, keypad, messages
from .codec import Command, Message
from .errors import NukiBusyError, NukiError, NukiFrameError, error_for
from .keyturner import (
    KeyturnerStates,
    LockActionRequest,
    LogEntry,
    LogRequest,
    decode_keyturner_states,
    decode_log_entry,
)
from .messages import SortOrder, StatusCode

log = structlog.get_logger(__name__)

# The lock answers a request within a few hundred ms; 5 s covers a busy radio and one retry
# of the link layer without holding a courier long.
RESPONSE_TIMEOUT = 5.0
# A lock action runs the motor (unlatch holds the latch ~1-3 s); COMPLETE may take 10 s.
MOTOR_TIMEOUT = 12.0


@dataclass(frozen=True, slots=True)
class Credentials:
    """What pairing leaves us: the shared key and our authorization id at this lock."""

    auth_id: int
    shared_key: bytes
    app_id: int
    lock_public_key: bytes


class Inbox:
    """Messages from the lock, reassembled and decrypted, or the reason none will come."""

    def __init__(self, credentials: Credentials) -> None:
        self._credentials = credentials
        self._queue: asyncio.Queue[Message | NukiError] = asyncio.Queue()
        self._usdio = codec.Reassembler(encrypted=True)
        self._gdio = codec.Reassembler(encrypted=False)

    async def setup(self, client: BleakClient) -> None:
        """Subscribe to the keyturner characteristics (once per physical connection)."""
        self._usdio.reset()
        self._gdio.reset()
        await client.start_notify(codec.KEYTURNER_USDIO, self._on_usdio)
        await client.start_notify(codec.KEYTURNER_GDIO, self._on_gdio)

    def lost(self) -> None:
        """The link dropped: whoever waits for an answer learns it now."""
        self._queue.put_nowait(NukiBusyError("the BLE link dropped before the lock answered"))

    def drain(self) -> None:
        """Forget anything that arrived between commands."""
        while not self._queue.empty():
            self._queue.get_nowait()

    async def get(self, within: float) -> Message:
        """The next message; NukiBusyError when none comes within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(within):
                item = await self._queue.get()
        except TimeoutError:
            raise NukiBusyError(f"the lock did not answer within {within:g} s") from None
        if isinstance(item, NukiError):
            raise item
        return item

    def _on_usdio(self, _: object, data: bytearray) -> None:
        try:
            for frame in self._usdio.feed(bytes(data)):
                self._queue.put_nowait(codec.decode_encrypted(self._credentials.shared_key, frame))
        except NukiFrameError as exc:
            self._usdio.reset()
            self._queue.put_nowait(exc)

    def _on_gdio(self, _: object, data: bytearray) -> None:
        try:
            for frame in self._gdio.feed(bytes(data)):
                command, payload = codec.decode_plain(frame)
                self._queue.put_nowait(Message(0, command, payload))
        except NukiFrameError as exc:
            self._gdio.reset()
            self._queue.put_nowait(exc)


class NukiSession:
    """Commands on one open link; every method raises NukiError subclasses only."""

    def __init__(
        self,
        client: BleakClient,
        inbox: Inbox,
        credentials: Credentials,
        *,
        timeout: float = RESPONSE_TIMEOUT,
        motor_timeout: float = MOTOR_TIMEOUT,
        nonce: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._client = client
        self._inbox = inbox
        self._credentials = credentials
        self._timeout = timeout
        self._motor_timeout = motor_timeout
        self._nonce = nonce

    async def send(self, command: int, payload: bytes) -> None:
        """Encrypt and write one command to the USDIO."""
        self._inbox.drain()
        creds = self._credentials
        frame = codec.encode_encrypted(
            creds.shared_key, self._nonce(codec.NONCE_BYTES), creds.auth_id, command, payload
        )
        try:
            await self._client.write_gatt_char(codec.KEYTURNER_USDIO, frame, response=True)
        except (BleakError, OSError, TimeoutError) as exc:
            raise NukiBusyError(f"writing to the lock failed: {exc}") from exc

    async def receive(self, *expected: int, within: float | None = None) -> Message:
        """The next message whose command is one of ``expected``; errors raise."""
        while True:
            message = await self._inbox.get(self._timeout if within is None else within)
            if message.command == Command.ERROR_REPORT:
                code, command = messages.decode_error_report(message.payload)
                raise error_for(code, command)
            if message.command in expected:
                return message
            log.debug("nuki.unexpected_message", command=f"0x{message.command:04X}")

    async def keyturner_states(self) -> KeyturnerStates:
        """Request Data (Keyturner States); no challenge needed."""
        await self.send(Command.REQUEST_DATA, messages.request_data(Command.KEYTURNER_STATES))
        reply = await self.receive(Command.KEYTURNER_STATES)
        return decode_keyturner_states(reply.payload)

    async def challenge(self) -> bytes:
        """A fresh challenge nonce for the next command."""
        await self.send(Command.REQUEST_DATA, messages.request_data(Command.CHALLENGE))
        reply = await self.receive(Command.CHALLENGE)
        return messages.decode_challenge(reply.payload)

    async def _challenged(self, command: int, body: bytes, pin: int | None) -> None:
        nonce = await self.challenge()
        await self.send(command, messages.with_challenge(body, nonce, pin))

    async def lock_action(
        self, request: LockActionRequest, on_states: Callable[[KeyturnerStates], None]
    ) -> None:
        """Run a lock action: ACCEPTED, state updates, then COMPLETE (or an Error Report)."""
        await self._challenged(Command.LOCK_ACTION, request.encode(), None)
        while True:
            reply = await self.receive(
                Command.STATUS, Command.KEYTURNER_STATES, within=self._motor_timeout
            )
            if reply.command == Command.KEYTURNER_STATES:
                on_states(decode_keyturner_states(reply.payload))
            elif messages.decode_status(reply.payload) == StatusCode.COMPLETE:
                return

    async def verify_pin(self, pin: int) -> None:
        await self._challenged(Command.VERIFY_SECURITY_PIN, b"", pin)
        await self._complete()

    async def add_keypad_code(self, spec: keypad.KeypadCodeSpec, pin: int) -> int | None:
        """Add a code; the lock's Keypad Code ID, or None if it only answered COMPLETE."""
        await self._challenged(Command.ADD_KEYPAD_CODE, spec.encode_add(), pin)
        reply = await self.receive(Command.KEYPAD_CODE_ID, Command.STATUS)
        if reply.command == Command.KEYPAD_CODE_ID:
            return keypad.decode_code_id(reply.payload)
        self._require_complete(reply)
        return None

    async def update_keypad_code(self, code_id: int, spec: keypad.KeypadCodeSpec, pin: int) -> None:
        await self._challenged(Command.UPDATE_KEYPAD_CODE, spec.encode_update(code_id), pin)
        await self._complete()

    async def remove_keypad_code(self, code_id: int, pin: int) -> None:
        await self._challenged(Command.REMOVE_KEYPAD_CODE, keypad.remove_request(code_id), pin)
        await self._complete()

    async def keypad_codes(self, pin: int, *, batch: int = 100) -> list[keypad.KeypadEntry]:
        """Every stored code: Keypad Code Count, the entries, then COMPLETE."""
        await self._challenged(Command.REQUEST_KEYPAD_CODES, keypad.list_request(0, batch), pin)
        entries: list[keypad.KeypadEntry] = []
        while True:
            reply = await self.receive(
                Command.KEYPAD_CODE_COUNT, Command.KEYPAD_CODE, Command.STATUS
            )
            if reply.command == Command.KEYPAD_CODE:
                entries.append(keypad.decode_entry(reply.payload))
            elif reply.command == Command.STATUS:
                self._require_complete(reply)
                return entries

    async def log_entries(self, pin: int, *, start: int = 0, count: int = 20) -> list[LogEntry]:
        """Up to ``count`` entries, newest first, from index ``start`` (0 = the newest)."""
        request = LogRequest(start, count, SortOrder.DESCENDING, total_count=False)
        await self._challenged(Command.REQUEST_LOG_ENTRIES, request.encode(), pin)
        entries: list[LogEntry] = []
        while True:
            reply = await self.receive(Command.LOG_ENTRY, Command.LOG_ENTRY_COUNT, Command.STATUS)
            if reply.command == Command.LOG_ENTRY:
                entries.append(decode_log_entry(reply.payload))
            elif reply.command == Command.STATUS:
                self._require_complete(reply)
                return entries

    async def _complete(self) -> None:
        self._require_complete(await self.receive(Command.STATUS))

    @staticmethod
    def _require_complete(reply: Message) -> None:
        if messages.decode_status(reply.payload) != StatusCode.COMPLETE:
            raise NukiFrameError("expected Status COMPLETE")
