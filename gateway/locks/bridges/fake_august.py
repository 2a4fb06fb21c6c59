"""A fake August / Yale Access cloud: a real aiohttp server answering as yalexs expects.

It serves what yalexs 9.2 calls (paths, headers, JSON shapes from its api_common, lock and
activity models and the vendor's recorded fixtures): session login with install-id validation
(2FA by a code "sent" to the account's email or phone), the lock list, lock detail with the
owner's offline key, lock status, entry-code pins, synchronous and queued (``type=async``)
remote lock/unlock, and the house activity feed (API version 4 shape). PubNub / websocket push
is not emulated: clients poll the activity feed. Faults (5xx/429 storms, hangs, dropped
connections after a command went through, malformed JSON, expired tokens) are injected per
request for tests.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from aiohttp import web

# The API keys yalexs 9.2 sends per brand (yalexs.const.BRAND_CONFIG); the fake checks them.
AUGUST_API_KEY = "d9984f29-07a6-816e-e1c9-44ec9d1be431"
# August cloud tokens are long-lived (months); clients refresh them when close to expiry.
DEFAULT_TOKEN_LIFETIME = timedelta(days=120)
# A queued (type=async) operation reaches the lock through the bridge a moment later.
ASYNC_OPERATION_DELAY = 0.05
# Closing waits this long for answers still held by a hang fault (tests stay fast).
SHUTDOWN_TIMEOUT = 0.5
LOCKED = "kAugLockState_Locked"
UNLOCKED = "kAugLockState_Unlocked"
# What the bridge answers when the bolt did not move (yalexs.lock.JAMMED_STATUS).
JAMMED = "FAILED_BRIDGE_ERROR_LOCK_JAMMED"
DOOR_CLOSED = "kAugDoorState_Closed"
_ACCEPTED_API_KEYS = {"x-august-api-key": AUGUST_API_KEY}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FaultKind = Literal["status", "malformed", "hang", "drop"]


@dataclass(slots=True)
class FakeAccount:
    """A cloud account: the login identity and the install ids it has validated by 2FA."""

    user_id: str
    email: str
    password: str
    phone: str | None = None
    first_name: str = "Site"
    last_name: str = "Owner"
    validated_installs: set[str] = field(default_factory=set)


@dataclass(slots=True)
class FakePin:
    """An entry code on a lock's keypad, owned by a user, in a slot."""

    user_id: str
    slot: int
    pin: str
    first_name: str
    last_name: str


@dataclass(slots=True)
class FakeLock:
    """A bridge-connected lock as the cloud knows it."""

    lock_id: str
    name: str
    house_id: str
    serial: str
    owner: str
    guests: set[str] = field(default_factory=set)
    status: str = LOCKED
    door: str = DOOR_CLOSED
    battery: float = 0.87
    bridge_online: bool = True
    offline_key: str | None = None
    offline_slot: int = 1
    pins: list[FakePin] = field(default_factory=list)
    jam_next: bool = False


@dataclass(slots=True)
class _Token:
    user_id: str
    install_id: str
    full: bool
    expires: datetime


@dataclass(slots=True)
class _Fault:
    kind: FaultKind
    path: str | None
    status: int = 503
    seconds: float = 0.0


# The fault a remote operation answers with after it was carried out.
_FAULT = web.RequestKey("fault", _Fault)


class FakeAugustCloud:
    """The fake cloud's state, its fault switches and its aiohttp app."""

    def __init__(
        self,
        *,
        now: Callable[[], datetime] | None = None,
        token_lifetime: timedelta = DEFAULT_TOKEN_LIFETIME,
    ) -> None:
        self._now = now or (lambda: datetime.now(UTC))
        self.token_lifetime = token_lifetime
        self.accounts: dict[str, FakeAccount] = {}
        self.locks: dict[str, FakeLock] = {}
        self.activities: dict[str, list[dict[str, Any]]] = {}
        self.sent_codes: dict[str, str] = {}
        self.operations: list[tuple[str, str]] = []
        self.requests: Counter[str] = Counter()
        self._tokens: dict[str, _Token] = {}
        self._faults: deque[_Fault] = deque()
        self._secret = secrets.token_bytes(32)
        self._last_ms = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.app = web.Application(middlewares=[self._gate])
        self._routes()

    # -- setup ---------------------------------------------------------------------------

    def add_account(self, email: str, password: str, **kwargs: Any) -> FakeAccount:
        """Create an account; ``user_id`` defaults to a fresh UUID."""
        user_id = kwargs.pop("user_id", str(uuid.uuid4()))
        account = FakeAccount(user_id=user_id, email=email, password=password, **kwargs)
        self.accounts[user_id] = account
        return account

    def add_lock(self, lock_id: str, *, owner: FakeAccount, serial: str, **kwargs: Any) -> FakeLock:
        """Create a lock owned by ``owner``; ``house_id`` defaults to one house per owner."""
        house_id = kwargs.pop("house_id", f"house-{owner.user_id[:8]}")
        name = kwargs.pop("name", f"Door {lock_id[:4]}")
        lock = FakeLock(lock_id, name, house_id, serial, owner.user_id, **kwargs)
        self.locks[lock_id] = lock
        self.activities.setdefault(house_id, [])
        return lock

    async def start(self) -> str:
        """Listen on 127.0.0.1 (a free port); return the base URL."""
        self._runner = web.AppRunner(
            self.app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def close(self) -> None:
        """Stop serving and cancel queued operations."""
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what happens at the door ----------------------------------------------------------

    def keypad_unlock(self, lock_id: str, slot: int) -> dict[str, Any]:
        """Someone typed the entry code in ``slot``: the lock opens and logs ``pin_unlock``."""
        lock = self.locks[lock_id]
        pin = next(p for p in lock.pins if p.slot == slot)
        lock.status = UNLOCKED
        user = {"UserID": pin.user_id, "FirstName": pin.first_name, "LastName": pin.last_name}
        return self.log(lock, "pin_unlock", user)

    def manual(self, lock_id: str, action: str) -> dict[str, Any]:
        """A thumb turn or an auto-relock: ``manual_unlock``, ``manual_lock`` or ``auto_lock``."""
        lock = self.locks[lock_id]
        lock.status = UNLOCKED if action.endswith("unlock") else LOCKED
        return self.log(lock, action, {"UserID": "manual", "FirstName": "", "LastName": ""})

    def log(self, lock: FakeLock, action: str, user: dict[str, str]) -> dict[str, Any]:
        """Append an activity (v4 shape) to the lock's house feed and return it."""
        stamp = max(self._last_ms + 1, int(self._now().timestamp() * 1000))
        self._last_ms = stamp
        activity = {
            "id": str(uuid.uuid4()),
            "timestamp": stamp,
            "action": action,
            "deviceID": lock.lock_id,
            "deviceType": "lock",
            "deviceName": lock.name,
            "user": user,
            "title": f"{action} at {lock.name}",
        }
        self.activities[lock.house_id].append(activity)
        return activity

    # -- faults ----------------------------------------------------------------------------

    def fail_next(self, count: int = 1, *, status: int = 503, path: str | None = None) -> None:
        """Answer the next ``count`` requests (whose path contains ``path``) with ``status``.

        A remote operation answered so is not carried out.
        """
        self._faults.extend(_Fault("status", path, status=status) for _ in range(count))

    def malformed_next(self, count: int = 1, *, path: str | None = None) -> None:
        """Answer the next ``count`` matching requests with 200 and a body that is not JSON.

        A remote operation is carried out first (only its answer is garbled).
        """
        self._faults.extend(_Fault("malformed", path) for _ in range(count))

    def hang_next(self, seconds: float, *, path: str | None = None) -> None:
        """Hold the next matching answer for ``seconds``; a remote operation is done first."""
        self._faults.append(_Fault("hang", path, seconds=seconds))

    def drop_next(self, *, path: str | None = None) -> None:
        """Close the connection instead of answering; a remote operation is done first."""
        self._faults.append(_Fault("drop", path))

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (401), as after a password change."""
        self._tokens.clear()

    def token_expiry(self, token: str) -> datetime | None:
        """When a token issued by this cloud expires (None if unknown)."""
        known = self._tokens.get(token)
        return None if known is None else known.expires

    # -- plumbing --------------------------------------------------------------------------

    def _routes(self) -> None:
        add = self.app.router
        add.add_post("/session", self._session)
        add.add_post("/validation/{method}", self._send_code)
        add.add_post("/validate/{method}", self._validate_code)
        add.add_get("/users/me", self._me)
        add.add_get("/users/houses/mine", self._houses)
        add.add_get("/users/locks/mine", self._locks)
        add.add_get("/locks/{lock_id}", self._lock_detail)
        add.add_get("/locks/{lock_id}/status", self._lock_status)
        add.add_get("/locks/{lock_id}/pins", self._pins)
        add.add_put("/remoteoperate/{lock_id}/{operation}", self._operate)
        add.add_get("/houses/{house_id}/activities", self._activities)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests[request.path] += 1
        if not _api_key_ok(request):
            return _error(401, "missing or wrong x-august-api-key / branding")
        fault = self._take_fault(request.path)
        # A remote operation is carried out before a late, lost or garbled answer.
        after = request.path.startswith("/remoteoperate/") and fault is not None
        if fault is not None and not (after and fault.kind != "status"):
            return await _apply(fault, request, None)
        if fault is not None:
            request[_FAULT] = fault
        try:
            return await handler(request)
        except _HttpError as error:
            return _error(error.status, error.message)

    def _take_fault(self, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.path is None or fault.path in path:
                self._faults.remove(fault)
                return fault
        return None

    def _issue(self, user_id: str, install_id: str, *, full: bool) -> tuple[str, datetime]:
        expires = self._now() + self.token_lifetime
        claims = {"installId": install_id, "userId": user_id, "exp": int(expires.timestamp())}
        claims["iat"] = int(self._now().timestamp())
        token = _jwt(claims, self._secret)
        self._tokens[token] = _Token(user_id, install_id, full, expires)
        return token, expires

    def _caller(self, request: web.Request, *, full: bool = True) -> FakeAccount:
        token = request.headers.get("x-august-access-token", "")
        known = self._tokens.get(token)
        if known is None or known.expires <= self._now() or (full and not known.full):
            raise _http(401, "access token invalid or expired")
        return self.accounts[known.user_id]

    def _lock_for(self, request: web.Request) -> tuple[FakeAccount, FakeLock]:
        caller = self._caller(request)
        lock = self.locks.get(request.match_info["lock_id"])
        if lock is None or caller.user_id not in {lock.owner, *lock.guests}:
            raise _http(404, "lock not found")
        return caller, lock

    # -- handlers --------------------------------------------------------------------------

    async def _session(self, request: web.Request) -> web.Response:
        body = await request.json()
        _method, _, identity = str(body["identifier"]).partition(":")
        install_id = str(body["installId"])
        account = self._find_account(identity)
        if account is None:
            raise _http(401, "unknown user")
        password_ok = hmac.compare_digest(account.password, str(body["password"]))
        validated = install_id in account.validated_installs
        token, expires = self._issue(account.user_id, install_id, full=password_ok and validated)
        answer = {
            "installId": install_id,
            "userId": account.user_id,
            "expiresAt": _iso(expires),
            "vPassword": password_ok,
            "vInstallId": validated,
            "hasInstallId": True,
            "hasPassword": True,
            "hasEmail": True,
            "hasPhone": account.phone is not None,
        }
        return web.json_response(answer, headers={"x-august-access-token": token})

    def _find_account(self, identity: str) -> FakeAccount | None:
        for account in self.accounts.values():
            if identity in (account.email, account.phone):
                return account
        return None

    async def _send_code(self, request: web.Request) -> web.Response:
        self._caller(request, full=False)
        body = await request.json()
        code = f"{secrets.randbelow(1_000_000):06d}"
        self.sent_codes[str(body["value"])] = code
        return web.json_response({"code": 200})

    async def _validate_code(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        token = self._tokens.get(request.headers.get("x-august-access-token", ""))
        self._caller(request, full=False)
        body = await request.json()
        identity = str(body[method])
        expected = self.sent_codes.get(identity)
        if token is None or expected is None or not hmac.compare_digest(expected, body["code"]):
            raise _http(401, "invalid verification code")
        self.accounts[token.user_id].validated_installs.add(token.install_id)
        del self.sent_codes[identity]
        return web.json_response({"code": 200})

    async def _me(self, request: web.Request) -> web.Response:
        user = self._caller(request)
        answer = {"UserID": user.user_id, "FirstName": user.first_name, "LastName": user.last_name}
        return web.json_response(answer)

    async def _houses(self, request: web.Request) -> web.Response:
        user = self._caller(request)
        known = self._tokens[request.headers["x-august-access-token"]]
        token, _ = self._issue(user.user_id, known.install_id, full=True)
        houses = sorted({lock.house_id for lock in self._visible(user)})
        answer = [{"HouseID": house, "HouseName": house, "type": "superuser"} for house in houses]
        return web.json_response(answer, headers={"x-august-access-token": token})

    def _visible(self, user: FakeAccount) -> list[FakeLock]:
        return [lock for lock in self.locks.values() if user.user_id in {lock.owner, *lock.guests}]

    async def _locks(self, request: web.Request) -> web.Response:
        user = self._caller(request)
        answer = {
            lock.lock_id: {
                "LockName": lock.name,
                "UserType": "superuser" if lock.owner == user.user_id else "user",
                "macAddress": "2E:BA:C4:14:3F:09",
                "HouseID": lock.house_id,
                "HouseName": lock.house_id,
            }
            for lock in self._visible(user)
        }
        return web.json_response(answer)

    async def _lock_detail(self, request: web.Request) -> web.Response:
        user, lock = self._lock_for(request)
        return web.json_response(_detail(lock, owner=user.user_id == lock.owner))

    async def _lock_status(self, request: web.Request) -> web.Response:
        _, lock = self._lock_for(request)
        if not lock.bridge_online:
            raise _http(422, "bridge offline")
        return web.json_response({"status": lock.status, "doorState": lock.door})

    async def _pins(self, request: web.Request) -> web.Response:
        _, lock = self._lock_for(request)
        loaded = [_pin_json(lock, pin) for pin in lock.pins]
        return web.json_response({"loaded": loaded, "created": [], "deleted": [], "disabled": []})

    async def _operate(self, request: web.Request) -> web.StreamResponse:
        user, lock = self._lock_for(request)
        operation = request.match_info["operation"]
        if operation not in ("lock", "unlock"):
            raise _http(400, f"unsupported operation {operation}")
        if not lock.bridge_online:
            raise _http(422, "bridge offline")
        if request.query.get("type") == "async":
            task = asyncio.get_running_loop().create_task(self._later(lock, operation, user))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return web.Response(text="")
        answer = self._execute(lock, operation, user)
        fault = request.get(_FAULT)
        if fault is not None:
            return await _apply(fault, request, answer)
        return web.json_response(answer)

    async def _later(self, lock: FakeLock, operation: str, user: FakeAccount) -> None:
        await asyncio.sleep(ASYNC_OPERATION_DELAY)
        self._execute(lock, operation, user)

    def _execute(self, lock: FakeLock, operation: str, user: FakeAccount) -> dict[str, Any]:
        self.operations.append((lock.lock_id, operation))
        caller = {"UserID": user.user_id, "FirstName": user.first_name, "LastName": user.last_name}
        if lock.jam_next:
            lock.jam_next = False
            lock.status = JAMMED
            activity = self.log(lock, "jammed", caller)
        else:
            lock.status = UNLOCKED if operation == "unlock" else LOCKED
            activity = self.log(lock, f"remote_{operation}", caller)
        started = datetime.fromtimestamp(activity["timestamp"] / 1000, UTC)
        info = {
            "action": operation,
            "startTime": _iso(started),
            "lockID": lock.lock_id,
            "serialNumber": lock.serial,
            "lockStatusChanged": True,
            "context": {"transactionID": str(uuid.uuid4()), "retryCount": 1},
        }
        return {
            "status": lock.status,
            "doorState": lock.door,
            "info": info,
            "retryCount": 1,
            "totalTime": 812,
            "resultsFromOperationCache": False,
        }

    async def _activities(self, request: web.Request) -> web.Response:
        user = self._caller(request)
        house = request.match_info["house_id"]
        if house not in {lock.house_id for lock in self._visible(user)}:
            raise _http(404, "house not found")
        limit = int(request.query.get("limit", "8"))
        newest_first = list(reversed(self.activities.get(house, [])))[:limit]
        return web.json_response(newest_first)


def _api_key_ok(request: web.Request) -> bool:
    return any(request.headers.get(name) == key for name, key in _ACCEPTED_API_KEYS.items()) and (
        request.headers.get("x-august-branding") in ("august", "yale")
    )


async def _apply(fault: _Fault, request: web.Request, answer: Any) -> web.StreamResponse:
    if fault.kind == "status":
        return _error(fault.status, "injected failure")
    if fault.kind == "malformed":
        return web.Response(text='{"LockID": "trunc', content_type="application/json")
    if fault.kind == "drop":
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)
    await asyncio.sleep(fault.seconds)
    return web.json_response(answer if answer is not None else {})


def _detail(lock: FakeLock, *, owner: bool) -> dict[str, Any]:
    status_word = {LOCKED: "locked", UNLOCKED: "unlocked"}.get(lock.status, lock.status)
    loaded = []
    if owner and lock.offline_key is not None:
        loaded.append(
            {
                "created": "2026-01-01T10:00:00.000Z",
                "key": lock.offline_key,
                "slot": lock.offline_slot,
                "UserID": lock.owner,
                "loaded": "2026-01-01T10:00:04.000Z",
            }
        )
    return {
        "LockName": lock.name,
        "Type": 2,
        "LockID": lock.lock_id,
        "HouseID": lock.house_id,
        "HouseName": lock.house_id,
        "Calibrated": False,
        "battery": lock.battery,
        "supportsEntryCodes": bool(lock.pins),
        "skuNumber": "AUG-SL02-M02-S02",
        "macAddress": "2E:BA:C4:14:3F:09",
        "SerialNumber": lock.serial,
        "LockStatus": {"status": status_word, "dateTime": "2026-01-01T10:00:00.000Z"},
        "currentFirmwareVersion": "3.0.44-3.0.29",
        "Bridge": {
            "_id": f"bridge-{lock.lock_id[:6]}",
            "mfgBridgeID": "C5WIC00090",
            "deviceModel": "august-connect",
            "firmwareVersion": "2.2.15",
            "operative": True,
            "status": {"current": "online" if lock.bridge_online else "offline"},
            "hyperBridge": False,
        },
        "OfflineKeys": {"created": [], "loaded": loaded, "deleted": [], "createdhk": []},
        "users": {},
        "pubsubChannel": str(uuid.uuid5(uuid.NAMESPACE_OID, lock.lock_id)),
    }


def _pin_json(lock: FakeLock, pin: FakePin) -> dict[str, Any]:
    stamp = "2026-01-01T10:00:00.000Z"
    return {
        "_id": f"pin-{pin.slot}",
        "lockID": lock.lock_id,
        "userID": pin.user_id,
        "state": "loaded",
        "pin": pin.pin,
        "slot": pin.slot,
        "accessType": "always",
        "firstName": pin.first_name,
        "lastName": pin.last_name,
        "unverified": False,
        "createdAt": stamp,
        "updatedAt": stamp,
        "loadedDate": stamp,
    }


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


class _HttpError(Exception):
    """An error answer (status and message) raised from deep inside a handler."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _http(status: int, message: str) -> _HttpError:
    return _HttpError(status, message)


def _iso(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict[str, Any], secret: bytes) -> str:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"
