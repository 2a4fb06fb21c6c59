"""The one place that calls yalexs: typed results out, and our own error for every failure.

yalexs (9.2) hides the August / Yale Access REST API behind ``ApiAsync`` and
``AuthenticatorAsync``. Two of its habits do not fit a hub that must never act twice:
it resends a request after a dropped connection (a remote unlock that went through would
run again) and it sleeps 2.5 s up to ten times on 429/502 (longer than any coordinator
timeout). An aiohttp client middleware on our own session turns both into our errors at
once, so the coordinator owns retries and the driver checks before resending.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

# yalexs ships no type hints (no py.typed): everything it returns is converted right here.
from yalexs.api_async import ApiAsync  # type: ignore[import-untyped]
from yalexs.authenticator_async import (  # type: ignore[import-untyped]
    AuthenticationState,
    AuthenticatorAsync,
    ValidationResult,
)
from yalexs.const import Brand  # type: ignore[import-untyped]
from yalexs.exceptions import AugustApiAIOHTTPError, InvalidAuth  # type: ignore[import-untyped]
from yalexs.lock import LockDoorStatus  # type: ignore[import-untyped]
from yalexs.lock import LockStatus as YaleLockStatus

from ...driver import (
    DoorState,
    LockError,
    LockJammedError,
    LockRefusedError,
    LockState,
    LockUnreachableError,
)
from .activities import CloudActivity, activity_from_yalexs

# Below the coordinator's STATUS_TIMEOUT (8 s), so a slow cloud fails here, as our error.
REQUEST_TIMEOUT = 6.0
# Cloud -> bridge (Wi-Fi) -> lock (BLE) -> back: 3-4 s in the vendor's recorded answers, more
# on a weak link. Below the coordinator's UNLOCK_TIMEOUT (15 s), so the driver still has time
# to check whether a lost answer's command went through before anyone resends it.
OPERATION_TIMEOUT = 12.0
# yalexs sleeps 2.5 s and retries these up to ten times; we fail fast, the coordinator backs off.
BUSY_STATUSES = frozenset({429, 502})
# yalexs's reading: 408 the bridge did not answer, 422 the bridge is offline, 423 it is busy.
BRIDGE_STATUSES = frozenset({408, 422, 423})
# Answers that say a command was not carried out (bridge offline or busy, rate limited,
# service unavailable); after any other failure it may have been, so check before resending.
NOT_CARRIED_OUT = frozenset({422, 423, 429, 503})
# Brands whose accounts sign in with a password (the others need OAuth via Home Assistant).
PASSWORD_BRANDS = ("august", "yale_access")

_BOLT = {
    YaleLockStatus.LOCKED: LockState.LOCKED,
    YaleLockStatus.UNLOCKED: LockState.UNLOCKED,
    YaleLockStatus.UNLATCHED: LockState.UNLOCKED,
    YaleLockStatus.JAMMED: LockState.JAMMED,
}
_DOOR = {LockDoorStatus.OPEN: DoorState.OPEN, LockDoorStatus.CLOSED: DoorState.CLOSED}


class YaleCloudError(LockError):
    """Base of the Yale / August cloud driver's errors; ``status`` is the HTTP status, if any."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class YaleCloudUnreachableError(YaleCloudError, LockUnreachableError):
    """The cloud or the lock's bridge did not answer, or is busy / rate limiting: retry later."""


class YaleCloudProtocolError(YaleCloudUnreachableError):
    """The cloud answered something that is not the JSON yalexs expects (a proxy page...)."""


class YaleCloudRefusedError(YaleCloudError, LockRefusedError):
    """The cloud refused (unknown lock, no offline key, unsupported brand): do not retry."""


class YaleCloudJammedError(YaleCloudError, LockJammedError):
    """The bridge reported that the bolt did not move."""


class YaleCloudAuthError(YaleCloudRefusedError):
    """Sign-in failed or the access token is no longer accepted: pair the lock again."""


@dataclass(frozen=True, slots=True)
class CloudLock:
    """A lock in the account's list."""

    lock_id: str
    name: str
    house_id: str


@dataclass(frozen=True, slots=True)
class CloudDetail:
    """What the lock detail says (the offline key only for the owner's account)."""

    lock_id: str
    name: str
    house_id: str
    serial: str
    battery_percent: int
    bridge_online: bool
    offline_key: str | None
    offline_slot: int | None


@dataclass(frozen=True, slots=True)
class Session:
    """An access token and when it expires."""

    token: str
    expires: datetime


class CloudClient:
    """The August / Yale Access cloud for one brand, over one aiohttp session."""

    def __init__(
        self,
        brand: str,
        *,
        api_base: str | None = None,
        request_timeout: float = REQUEST_TIMEOUT,
        operation_timeout: float = OPERATION_TIMEOUT,
    ) -> None:
        if brand not in PASSWORD_BRANDS:
            raise YaleCloudRefusedError(
                f"brand {brand!r} is not supported: use one of {', '.join(PASSWORD_BRANDS)} "
                "(Yale Home / Yale Global accounts need OAuth, which yalexs offers only to "
                "Home Assistant)"
            )
        self._session = aiohttp.ClientSession(middlewares=(_fail_fast,))
        self.api = _Api(
            self._session,
            timeout=request_timeout,
            command_timeout=operation_timeout,
            brand=Brand(brand),
        )
        if api_base is not None:
            self.api.base_url = api_base.rstrip("/")

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._session.close()

    async def user_id(self, token: str) -> str:
        """The signed-in account's user id (``/users/me``)."""
        with translated("read the account"):
            return str((await self.api.async_get_user(token))["UserID"])

    async def locks(self, token: str) -> list[CloudLock]:
        """The account's locks."""
        with translated("list the locks"):
            found = await self.api.async_get_locks(token)
            return [CloudLock(str(x.device_id), str(x.device_name), str(x.house_id)) for x in found]

    async def detail(self, token: str, lock_id: str) -> CloudDetail:
        """The lock's detail: serial, house, battery, bridge, offline key."""
        with translated(f"read lock {lock_id}"):
            found = await self.api.async_get_lock_detail(token, lock_id)
            slot = found.offline_slot
            return CloudDetail(
                lock_id=str(found.device_id),
                name=str(found.device_name),
                house_id=str(found.house_id),
                serial=str(found.serial_number),
                battery_percent=int(found.battery_level),
                bridge_online=bool(found.bridge_is_online),
                offline_key=None if found.offline_key is None else str(found.offline_key),
                offline_slot=None if slot is None else int(slot),
            )

    async def status(self, token: str, lock_id: str) -> tuple[LockState, DoorState]:
        """The bolt and the door as the bridge reports them now."""
        with translated(f"read the status of lock {lock_id}"):
            bolt, door = await self.api.async_get_lock_status(token, lock_id, door_status=True)
        return _BOLT.get(bolt, LockState.UNKNOWN), _DOOR.get(door, DoorState.UNKNOWN)

    async def operate(self, token: str, lock_id: str, *, unlock: bool) -> LockState:
        """Lock or unlock through the bridge and wait for its answer (the bolt afterwards)."""
        verb = "unlock" if unlock else "lock"
        with translated(f"{verb} lock {lock_id}"):
            call = self.api.async_unlock if unlock else self.api.async_lock
            bolt = await call(token, lock_id)
        state = _BOLT.get(bolt, LockState.UNKNOWN)
        if state is LockState.JAMMED:
            raise YaleCloudJammedError(f"lock {lock_id}: the bridge reports the bolt jammed")
        return state

    async def activities(self, token: str, house_id: str, limit: int) -> list[CloudActivity]:
        """The house's newest ``limit`` activities that concern a lock's bolt or door."""
        with translated(f"read the activity of house {house_id}"):
            found = await self.api.async_get_house_activities(token, house_id, limit=limit)
            converted = [activity_from_yalexs(activity) for activity in found]
        return [activity for activity in converted if activity is not None]

    async def pin_slots(self, token: str, lock_id: str) -> dict[str, int]:
        """Entry-code slots by user id (the codes themselves are never kept)."""
        with translated(f"read the entry codes of lock {lock_id}"):
            pins = await self.api.async_get_pins(token, lock_id)
            return {str(pin.user_id): int(pin.slot) for pin in pins}

    async def refresh(self, token: str) -> str:
        """A fresh access token for ``token`` (the cloud returns one in a response header)."""
        with translated("refresh the access token"):
            return str(await self.api.async_refresh_access_token(token))


class CloudLogin:
    """yalexs's sign-in: password, then a code sent to the email or phone for a new install id."""

    def __init__(
        self, client: CloudClient, identity: str, password: str, *, install_id: str
    ) -> None:
        self.method = "email" if "@" in identity else "phone"
        self._auth = AuthenticatorAsync(
            client.api, self.method, identity, password, install_id=install_id
        )
        self._authentication: Any = None

    async def authenticate(self) -> str:
        """Sign in; ``authenticated``, ``requires_validation`` or ``bad_password``."""
        with translated("sign in"):
            if self._authentication is None:
                await self._auth.async_setup_authentication()
            self._authentication = await self._auth.async_authenticate()
            return str(self._authentication.state.value)

    async def send_code(self) -> None:
        """Have the cloud send a verification code to the account's email or phone."""
        with translated("send the verification code"):
            await self._auth.async_send_verification_code()

    async def validate(self, code: str) -> bool:
        """True when the cloud accepted ``code`` for this install id."""
        with translated("check the verification code"):
            result = await self._auth.async_validate_verification_code(code)
        return bool(result is ValidationResult.VALIDATED)

    def session(self) -> Session:
        """The token of an authenticated sign-in."""
        auth = self._authentication
        if auth is None or auth.state is not AuthenticationState.AUTHENTICATED:
            raise YaleCloudAuthError("not signed in")
        return Session(str(auth.access_token), auth.parsed_expiration_time())


class _Api(ApiAsync):  # type: ignore[misc]  # ApiAsync is untyped (yalexs has no py.typed)
    """ApiAsync pointed at ``base_url`` (a regional endpoint or a test server)."""

    base_url: str | None = None

    def get_brand_url(self, url_str: str) -> str:
        if self.base_url is None:
            return str(super().get_brand_url(url_str))
        return f"{self.base_url}{url_str}"


async def _fail_fast(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
    """Lost connections and busy answers become our error before yalexs can resend or sleep."""
    try:
        response = await handler(request)
    except aiohttp.ClientConnectionError as exc:
        raise YaleCloudUnreachableError(
            f"the cloud connection failed during {request.method} {request.url.path} "
            f"({type(exc).__name__}); the request may or may not have been carried out"
        ) from None
    if response.status in BUSY_STATUSES:
        response.release()
        raise YaleCloudUnreachableError(
            f"the cloud is busy or rate limiting (HTTP {response.status}); retry later",
            status=response.status,
        )
    return response


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn whatever yalexs, aiohttp or a bad answer raises into a YaleCloudError."""
    try:
        yield
    except YaleCloudError:
        raise
    except InvalidAuth:
        raise YaleCloudAuthError(
            f"could not {what}: the cloud refused the sign-in or the access token; pair "
            "again with `lockhub gateway pair yale_cloud --lock ID`"
        ) from None
    except AugustApiAIOHTTPError as exc:
        raise _by_status(what, exc.status or None, str(exc)) from None
    except TimeoutError:
        raise YaleCloudUnreachableError(
            f"could not {what}: the cloud did not answer in time"
        ) from None
    except aiohttp.ContentTypeError:
        raise YaleCloudProtocolError(f"could not {what}: the cloud's answer is not JSON") from None
    except aiohttp.ClientError as exc:
        raise YaleCloudUnreachableError(f"could not {what}: {type(exc).__name__}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise YaleCloudProtocolError(
            f"could not {what}: the cloud's answer is malformed ({type(exc).__name__})"
        ) from None


def _by_status(what: str, status: int | None, message: str) -> YaleCloudError:
    if status is None or status in BRIDGE_STATUSES or status in BUSY_STATUSES or status >= 500:
        return YaleCloudUnreachableError(f"could not {what}: {message}", status=status)
    return YaleCloudRefusedError(f"could not {what}: {message}", status=status)
