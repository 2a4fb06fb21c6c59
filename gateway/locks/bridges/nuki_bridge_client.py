"""An async client for one Nuki Bridge: one request at a time, backoff on 503, our errors only.

The bridge serves one request at a time and answers 503 while busy, so every client of the same
bridge (several locks behind one bridge) shares one asyncio.Lock, and a 503 is retried after a
short backoff. aiohttp's errors and HTTP statuses become the driver's errors here, at the edge.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from types import TracebackType

import aiohttp
import structlog

from ..driver import LockRefusedError, LockUnreachableError
from .nuki_bridge_api import (
    NONCE_BYTES,
    RNR_MAX,
    AuthMode,
    AuthReply,
    BridgeInfo,
    Device,
    DeviceState,
    NukiBridgeError,
    Outcome,
    RegisteredCallback,
    parse_auth,
    parse_callback_list,
    parse_info,
    parse_list,
    parse_lock_state,
    parse_outcome,
    token_params,
)

log = structlog.get_logger(__name__)

# Reads are served from the bridge's own cache: well under a second on a LAN, 5 s on bad Wi-Fi.
REQUEST_TIMEOUT = 5.0
# A waited-for lock action returns after the motor stopped: a BLE connect (1-3 s) and the turn
# (2-4 s). 12 s stays under the coordinator's UNLOCK_TIMEOUT (15 s), which cancels us anyway.
ACTION_TIMEOUT = 12.0
# /auth holds the request open for 30 s while the bridge waits for its button.
AUTH_TIMEOUT = 35.0
# 503 means another request is running on the bridge (or the lock is out of its reach); four
# retries at 0.25, 0.5, 1 and 2 s cover one slow lock action before the coordinator's retry.
BUSY_RETRIES = 4
BUSY_BACKOFF_INITIAL = 0.25
BUSY_BACKOFF_MAX = 2.0
# A reply is a few hundred bytes per device; 256 KiB bounds a hostile or broken bridge.
MAX_REPLY_BYTES = 256 * 1024
AUTH_ADVICE = (
    "check the token (pair again with `lockhub gateway pair nuki_bridge --lock ID`, or fix "
    "token_file); hashed and encrypted tokens also fail when the hub's clock is more than "
    "60 s off the bridge's, and encrypted tokens need bridge firmware 2.14.0 (1.22.1 on the "
    'first hardware bridge): set auth = "hashed" for older bridges'
)

# One gate per bridge address, shared by every client in this event loop.
_GATES: dict[tuple[str, int], tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = {}


class BridgeUnreachableError(NukiBridgeError, LockUnreachableError):
    """The bridge did not answer, timed out, dropped the connection or stayed busy."""


class BridgeRefusedError(NukiBridgeError, LockRefusedError):
    """The bridge refused the request (bad token, unknown lock, bad parameters)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def bridge_gate(host: str, port: int) -> asyncio.Lock:
    """The lock that serialises requests to ``host:port`` within the running event loop."""
    loop = asyncio.get_running_loop()
    entry = _GATES.get((host, port))
    if entry is None or entry[0] is not loop:  # a lock is bound to one loop (tests run many)
        entry = (loop, asyncio.Lock())
        _GATES[(host, port)] = entry
    return entry[1]


class BridgeClient:
    """The HTTP API of one bridge; ``async with`` opens and closes its connection pool."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        token: str | None,
        auth: AuthMode | None,
        now: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        request_timeout: float = REQUEST_TIMEOUT,
        action_timeout: float = ACTION_TIMEOUT,
        auth_timeout: float = AUTH_TIMEOUT,
    ) -> None:
        self.host, self.port = host, port
        self.token = token
        # None: the safest mode the bridge takes, found on the first request (encrypted, then
        # hashed; never plain unless configured).
        self.auth = auth
        self._now, self._sleep = now, sleep
        self._timeouts = (request_timeout, action_timeout, auth_timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> BridgeClient:
        self.open()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def open(self) -> None:
        """Create the connection pool (idempotent)."""
        if self._session is None:
            session = aiohttp.ClientSession(raise_for_status=False)
            # aiohttp resends a GET once when the connection drops; /lockAction is a GET, and
            # the bridge may already have moved the bolt. Our retries check the state first.
            session._retry_connection = False
            self._session = session

    async def close(self) -> None:
        """Close the connection pool (idempotent)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def auth_token(self) -> AuthReply:
        """GET /auth: the token, if the bridge's button is pressed within 30 s."""
        return parse_auth(await self._request("auth", {}, self._timeouts[2], authenticated=False))

    async def info(self) -> BridgeInfo:
        """GET /info."""
        return parse_info(await self._get("info", {}))

    async def devices(self) -> list[Device]:
        """GET /list."""
        return parse_list(await self._get("list", {}))

    async def lock_state(self, nuki_id: int, device_type: int) -> DeviceState:
        """GET /lockState for one device."""
        params = {"nukiId": str(nuki_id), "deviceType": str(device_type)}
        return parse_lock_state(await self._get("lockState", params))

    async def lock_action(self, nuki_id: int, device_type: int, action: int) -> Outcome:
        """GET /lockAction and wait (noWait=0) until the lock reports the action done."""
        params = {
            "nukiId": str(nuki_id),
            "deviceType": str(device_type),
            "action": str(action),
            # Waiting makes ``success`` the lock's own report that the bolt moved.
            "noWait": "0",
        }
        raw = await self._get("lockAction", params, limit=self._timeouts[1])
        return parse_outcome(raw)

    async def callbacks(self) -> list[RegisteredCallback]:
        """GET /callback/list."""
        return parse_callback_list(await self._get("callback/list", {}))

    async def add_callback(self, url: str) -> Outcome:
        """GET /callback/add?url=..."""
        return parse_outcome(await self._get("callback/add", {"url": url}))

    async def remove_callback(self, callback_id: int) -> Outcome:
        """GET /callback/remove?id=..."""
        return parse_outcome(await self._get("callback/remove", {"id": str(callback_id)}))

    async def _get(
        self, path: str, params: Mapping[str, str], *, limit: float | None = None
    ) -> bytes:
        limit = self._timeouts[0] if limit is None else limit
        if self.auth is not None:
            return await self._request(path, params, limit)
        try:
            raw = await self._request(path, params, limit, mode=AuthMode.ENCRYPTED)
        except BridgeRefusedError as exc:
            if exc.status != 401:
                raise
            raw = await self._request(path, params, limit, mode=AuthMode.HASHED)
            log.warning("nuki_bridge.auth_downgraded", bridge=self._name, auth="hashed")
            self.auth = AuthMode.HASHED
            return raw
        self.auth = AuthMode.ENCRYPTED
        return raw

    async def _request(
        self,
        path: str,
        params: Mapping[str, str],
        limit: float,
        *,
        authenticated: bool = True,
        mode: AuthMode | None = None,
    ) -> bytes:
        delay = BUSY_BACKOFF_INITIAL
        for attempt in range(BUSY_RETRIES + 1):
            # Fresh token parameters per attempt: the bridge takes each rnr/nonce only once.
            query = {**params, **(self._token_params(mode) if authenticated else {})}
            async with bridge_gate(self.host, self.port):
                status, raw = await self._once(path, query, limit)
            if status != 503:
                return self._check(path, status, raw)
            if attempt < BUSY_RETRIES:
                log.info("nuki_bridge.busy", bridge=self._name, path=path, retry_in=delay)
                await self._sleep(delay)
                delay = min(delay * 2, BUSY_BACKOFF_MAX)
        raise BridgeUnreachableError(
            f"Nuki Bridge {self._name} stayed busy (503) for {BUSY_RETRIES + 1} tries of /{path}"
        )

    def _token_params(self, mode: AuthMode | None) -> dict[str, str]:
        if self.token is None:
            raise BridgeRefusedError(
                f"no API token for Nuki Bridge {self._name}: run `lockhub gateway pair "
                "nuki_bridge --lock ID` or set token_file",
                status=401,
            )
        return token_params(
            mode or self.auth or AuthMode.ENCRYPTED,
            self.token,
            now=self._now(),
            rnr=secrets.randbelow(RNR_MAX + 1),
            nonce=secrets.token_bytes(NONCE_BYTES),
        )

    async def _once(self, path: str, query: Mapping[str, str], limit: float) -> tuple[int, bytes]:
        self.open()
        assert self._session is not None  # noqa: S101 - open() just made it
        url = f"http://{self.host}:{self.port}/{path}"
        try:
            async with self._session.get(
                url, params=query, timeout=aiohttp.ClientTimeout(total=limit)
            ) as response:
                return response.status, await _read_capped(response)
        except TimeoutError:
            raise BridgeUnreachableError(
                f"Nuki Bridge {self._name} did not answer /{path} within {limit} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise BridgeUnreachableError(
                f"Nuki Bridge {self._name} unreachable on /{path}: {type(exc).__name__}"
            ) from None

    def _check(self, path: str, status: int, raw: bytes) -> bytes:
        if status == 200:
            return raw
        if status == 401:
            raise BridgeRefusedError(
                f"Nuki Bridge {self._name} rejected the API token (401): {AUTH_ADVICE}",
                status=status,
            )
        if status == 403:
            raise BridgeRefusedError(
                f"Nuki Bridge {self._name} refused /{path} (403): the HTTP API or /auth is "
                "disabled; enable it in the Nuki app (Manage bridge > HTTP API)",
                status=status,
            )
        if status == 404:
            raise BridgeRefusedError(
                f"Nuki Bridge {self._name} does not know this device (404): check nuki_id "
                "and device_type against /list",
                status=status,
            )
        if status in (400, 405):
            raise BridgeRefusedError(
                f"Nuki Bridge {self._name} rejected the parameters of /{path} ({status})",
                status=status,
            )
        raise BridgeUnreachableError(f"Nuki Bridge {self._name} answered {status} to /{path}")

    @property
    def _name(self) -> str:
        return f"{self.host}:{self.port}"


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    raw = bytearray()
    while len(raw) <= MAX_REPLY_BYTES:
        chunk = await response.content.read(MAX_REPLY_BYTES + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) > MAX_REPLY_BYTES:
        raise BridgeUnreachableError(f"the bridge's reply is larger than {MAX_REPLY_BYTES} bytes")
    return bytes(raw)
