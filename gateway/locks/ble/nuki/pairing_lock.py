"""The lock's side of Nuki pairing, for the emulator: plain frames in, plain frames out."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from . import codec, messages
from .codec import Command
from .errors import ErrorCode, NukiFrameError

Reply = tuple[int, bytes]


@dataclass(slots=True)
class _Progress:
    client_public: bytes = b""
    shared_key: bytes = b""
    nonce: bytes = b""
    client_nonce: bytes = b""
    auth_id: int = 0
    name: str = ""
    step: int = 0


class LockPairing:
    """Answers the five pairing steps; a confirmed client is handed to ``register``."""

    def __init__(
        self,
        private_key: bytes,
        nuki_id: int,
        next_id: Callable[[], int],
        register: Callable[[int, bytes, str], None],
    ) -> None:
        self._private = private_key
        self.public_key = codec.public_key(private_key)
        self._uuid = struct.pack("<I", nuki_id) * 4
        self._next_id = next_id
        self._register = register
        self._progress = _Progress()

    def reset(self) -> None:
        """Forget a half-done pairing (link dropped, mode changed)."""
        self._progress = _Progress()

    def handle(self, frame: bytes, pairing_mode: bool) -> list[Reply]:
        """The replies to one frame written to the pairing GDIO."""
        try:
            command, payload = codec.decode_plain(frame)
        except NukiFrameError:
            return [_error(ErrorCode.BAD_CRC, 0)]
        if not pairing_mode:
            return [_error(ErrorCode.P_NOT_PAIRING, command)]
        steps: dict[int, Callable[[bytes], list[Reply]]] = {
            Command.REQUEST_DATA: self._send_key,
            Command.PUBLIC_KEY: self._take_key,
            Command.AUTHORIZATION_AUTHENTICATOR: self._take_authenticator,
            Command.AUTHORIZATION_DATA: self._take_data,
            Command.AUTHORIZATION_ID_CONFIRMATION: self._take_confirmation,
        }
        step = steps.get(command, self._unknown)
        try:
            return step(payload)
        except NukiFrameError:
            self.reset()
            return [_error(ErrorCode.BAD_LENGTH, command)]
        except _Bad as bad:
            self.reset()
            return [_error(bad.code, command)]

    def _unknown(self, payload: bytes) -> list[Reply]:
        raise _Bad(ErrorCode.P_BAD_PARAMETER)

    def _expect(self, step: int) -> None:
        if self._progress.step != step:
            raise _Bad(ErrorCode.P_BAD_PARAMETER)
        self._progress.step += 1

    def _send_key(self, payload: bytes) -> list[Reply]:
        if messages.decode_request_data(payload) != Command.PUBLIC_KEY:
            raise _Bad(ErrorCode.P_BAD_PARAMETER)
        self.reset()
        self._expect(0)
        return [(Command.PUBLIC_KEY, self.public_key)]

    def _take_key(self, payload: bytes) -> list[Reply]:
        self._expect(1)
        progress = self._progress
        progress.client_public = messages.decode_key(payload)
        progress.shared_key = codec.shared_key(progress.client_public, self._private)
        progress.nonce = os.urandom(codec.CHALLENGE_BYTES)
        return [(Command.CHALLENGE, progress.nonce)]

    def _take_authenticator(self, payload: bytes) -> list[Reply]:
        self._expect(2)
        progress = self._progress
        expected = codec.authenticator(
            progress.shared_key, progress.client_public, self.public_key, progress.nonce
        )
        if not codec.authenticators_match(expected, messages.decode_key(payload)):
            raise _Bad(ErrorCode.P_BAD_AUTHENTICATOR)
        progress.nonce = os.urandom(codec.CHALLENGE_BYTES)
        return [(Command.CHALLENGE, progress.nonce)]

    def _take_data(self, payload: bytes) -> list[Reply]:
        self._expect(3)
        progress = self._progress
        tag, data = messages.decode_authorization_data(payload)
        expected = codec.authenticator(progress.shared_key, data.signed_part(), progress.nonce)
        if not codec.authenticators_match(expected, tag):
            raise _Bad(ErrorCode.P_BAD_AUTHENTICATOR)
        progress.client_nonce, progress.name = data.client_nonce, data.name
        progress.auth_id = self._next_id()
        progress.nonce = os.urandom(codec.CHALLENGE_BYTES)
        reply = messages.AuthorizationId(progress.auth_id, self._uuid, progress.nonce)
        tag = codec.authenticator(progress.shared_key, reply.signed_part(), data.client_nonce)
        return [(Command.AUTHORIZATION_ID, tag + reply.signed_part())]

    def _take_confirmation(self, payload: bytes) -> list[Reply]:
        self._expect(4)
        progress = self._progress
        tag, auth_id = messages.decode_confirmation(payload)
        expected = codec.authenticator(
            progress.shared_key, struct.pack("<I", auth_id), progress.nonce
        )
        if auth_id != progress.auth_id or not codec.authenticators_match(expected, tag):
            raise _Bad(ErrorCode.P_BAD_AUTHENTICATOR)
        self._register(auth_id, progress.shared_key, progress.name)
        self.reset()
        return [(Command.STATUS, messages.status(messages.StatusCode.COMPLETE))]


def _error(code: int, command: int) -> Reply:
    return Command.ERROR_REPORT, messages.error_report(code, command)


class _Bad(Exception):  # noqa: N818 - control flow inside the emulator, never escapes it
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code
