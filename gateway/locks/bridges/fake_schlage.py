"""A real HTTP server standing in for Schlage's cloud: its Cognito user pool and its lock API.

Answers what pyschlage (and pycognito under it) send: the AWS JSON protocol on ``POST /`` for
Cognito (``InitiateAuth`` with ``USER_SRP_AUTH`` or ``REFRESH_TOKEN_AUTH``,
``RespondToAuthChallenge`` with ``PASSWORD_VERIFIER`` checked with real SRP-6a math), the pool's
JWKS for RS256 token checks, and the Allegion API under ``/v1``. Faults (5xx/429 storms, stalls,
malformed bodies, revoked tokens) are switched on by tests; counters show what ran how often.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import math
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from pyschlage.auth import API_KEY, CLIENT_ID, CLIENT_SECRET, USER_POOL_ID

POOL_ID = USER_POOL_ID
_POOL_NAME = POOL_ID.split("_")[1]
_TARGET_PREFIX = "AWSCognitoIdentityProviderService."
_AMZ_JSON = "application/x-amz-json-1.1"
_KID = "fake-schlage-1"
# RFC 5054 3072-bit group, as Cognito uses, with generator 2.
_N = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    16,
)
_G = 2
# Cognito's timestamp in the password claim: "Wed Nov 25 12:09:58 UTC 2026" (day not padded).
_TIMESTAMP = re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} \d{1,2} \d\d:\d\d:\d\d UTC \d{4}$")
_NO_UUID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
_LOCKED, _UNLOCKED, _JAMMED = 1, 0, 2


def _padded(value: int | str) -> str:
    """Hex (of an int, or hex text as given) as Cognito's SRP hashes it: even, never negative."""
    text = value if isinstance(value, str) else f"{value:x}"
    if len(text) % 2:
        return "0" + text
    return "00" + text if text[0] in "89abcdef" else text


def _hash_hex(hex_text: str) -> str:
    return hashlib.sha256(bytes.fromhex(hex_text)).hexdigest()


_K = int(_hash_hex(_padded(_N) + _padded(_G)), 16)


def _secret_hash(username: str) -> str:
    digest = hmac.new(CLIENT_SECRET.encode(), (username + CLIENT_ID).encode(), "sha256").digest()
    return base64.b64encode(digest).decode()


def _private_x(salt_hex: str, user: str, password: str) -> int:
    inner = hashlib.sha256(f"{_POOL_NAME}{user}:{password}".encode()).hexdigest()
    return int(_hash_hex(_padded(salt_hex) + inner), 16)  # the salt as sent, leading zeros kept


def _session_key(premaster: int, scrambler: int) -> bytes:
    """HKDF-SHA256 (one block) of S with u as salt, info "Caldera Derived Key": 16 bytes."""
    prk = hmac.new(bytes.fromhex(_padded(scrambler)), bytes.fromhex(_padded(premaster)), "sha256")
    return hmac.new(prk.digest(), b"Caldera Derived Key\x01", "sha256").digest()[:16]


@functools.cache
def _signing_key() -> rsa.RSAPrivateKey:
    """The pool's token-signing key: one per process, as generating one takes a while."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CognitoError(Exception):
    """An AWS JSON error answer: ``__type`` and message, with its HTTP status."""

    def __init__(self, kind: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


@dataclass(slots=True)
class _Challenge:
    sub: str
    big_a: int
    small_b: int
    big_b: int
    salt: str


@dataclass(slots=True)
class FakeLock:
    """One Schlage WiFi lock as the cloud knows it."""

    device_id: str
    name: str
    device_type: str = "be489wifi"
    lock_state: int = _LOCKED
    battery: int = 87
    connected: bool = True
    max_codes: int = 30
    code_length: int = 6
    door_state: int | None = 2
    jam_next: bool = False
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    logs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, owner: str) -> dict[str, Any]:
        """The device record as ``GET /devices/{id}`` returns it."""
        attributes: dict[str, Any] = {
            "accessCodeLength": self.code_length,
            "batteryLevel": self.battery,
            "batteryLowState": 1 if self.battery < 20 else 0,
            "lockState": self.lock_state,
            "maxUserCodes": self.max_codes,
            "modelName": "BE489WB",
            "mainFirmwareVersion": "10.00.00264232",
        }
        if self.door_state is not None:
            attributes["doorState"] = self.door_state
        return {
            "deviceId": self.device_id,
            "name": self.name,
            "devicetypeId": self.device_type,
            "modelName": "BE489WB",
            "connected": self.connected,
            "CAT": "01234",
            "attributes": attributes,
            "users": [{"identityId": owner, "email": "owner@example.com", "friendlyName": "o"}],
        }


class FakeSchlageCloud:
    """The Cognito pool and the Schlage API on one aiohttp app (``app``)."""

    def __init__(self, *, username: str, password: str, token_lifetime: int = 3600) -> None:
        self.username = username
        self.sub = str(uuid.uuid4())
        self.user_id = str(uuid.uuid4())
        self.token_lifetime = token_lifetime
        self._salt = secrets.token_hex(16)
        self._verifier = 0
        self.set_password(password)
        self._key = _signing_key()
        self._challenges: dict[str, _Challenge] = {}
        self._refresh_tokens: set[str] = set()
        self.expires_at = 0  # when the last issued tokens expire (epoch seconds)
        self._issued: set[str] = set()  # access token ids still honoured
        self.locks: dict[str, FakeLock] = {}
        self.notifications: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self.api_faults: list[int] = []  # statuses answered instead of the next API calls
        self.cognito_faults: list[tuple[int, str]] = []
        self.malformed = 0  # API answers replaced by broken JSON
        self.next_challenge: str | None = None  # e.g. "SOFTWARE_TOKEN_MFA" after the password
        self.notification_faults = 0  # next notification saves answer 500
        self.jwks_empty = False  # publish no signing key: tokens cannot be verified
        self.command_stalls: list[float] = []  # the same, for the next device commands only
        self.stalls: list[float] = []  # seconds to hold the next API answers, after acting
        self.drops = 0  # next API calls act, then the connection closes without an answer
        self.app = web.Application(middlewares=[self._faults])
        self.app.router.add_post("/", self._cognito)
        self.app.router.add_get(f"/{POOL_ID}/.well-known/jwks.json", self._jwks)
        self._add_api_routes()

    def set_password(self, password: str) -> None:
        """Change the account password (old sessions keep their refresh tokens)."""
        self._verifier = pow(_G, _private_x(self._salt, self.sub, password), _N)

    def add_lock(self, name: str = "Front Door", **attributes: Any) -> FakeLock:
        """Register a lock on the account."""
        lock = FakeLock(str(uuid.uuid4()), name, **attributes)
        self.locks[lock.device_id] = lock
        return lock

    def forget_refresh_tokens(self) -> None:
        """Refuse every refresh token issued so far (as when they expire after 30 days)."""
        self._refresh_tokens.clear()

    def revoke_tokens(self) -> None:
        """Invalidate every access token issued so far (as a password reset does)."""
        self._issued.clear()

    def log(
        self, lock: FakeLock, code: int, *, accessor: str = _NO_UUID, keypad: str = _NO_UUID
    ) -> str:
        """Append a log entry to ``lock``; return its logId."""
        log_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        message = {"accessorUuid": accessor, "keypadUuid": keypad, "eventCode": code}
        message |= {"action": 2, "clientId": None, "secondsSinceEpoch": int(now.timestamp())}
        created = _iso(now)
        lock.logs.append(
            {
                "createdAt": created,
                "updatedAt": created,
                "timestamp": created,
                "deviceId": lock.device_id,
                "logId": log_id,
                "message": message,
                "type": "DEVICE_LOG",
            }
        )
        return log_id

    def type_code(self, lock: FakeLock, code: str) -> bool:
        """Someone types ``code`` on the keypad: unlock when a code valid now matches."""
        now = time.time()
        for code_id, stored in lock.codes.items():
            typed = f"{stored['accessCode']:0{lock.code_length}}"
            if hmac.compare_digest(typed, code) and (
                stored["activationSecs"] <= now < stored["expirationSecs"]
            ):
                lock.lock_state = _UNLOCKED
                self.log(lock, 2, keypad=code_id)
                return True
        self.log(lock, 11)
        return False

    @web.middleware
    async def _faults(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        refusal = self._refusal(request) if request.path.startswith("/v1/") else None
        if refusal is not None or not request.path.startswith("/v1/"):
            return refusal or await handler(request)
        response = await handler(request)
        if self.stalls:
            await asyncio.sleep(self.stalls.pop(0))  # acted already; the client may give up
        if self.drops:
            self.drops -= 1
            assert request.transport is not None  # noqa: S101 - aiohttp sets it while serving
            request.transport.close()  # acted already; the answer is lost
            return web.Response(status=204)
        if self.malformed:
            self.malformed -= 1
            return web.Response(text='{"deviceId": ', content_type="application/json")
        return response

    def _refusal(self, request: web.Request) -> web.Response | None:
        """An injected fault, a wrong API key or a bad token: the answer instead of the call."""
        if self.api_faults:
            status = self.api_faults.pop(0)
            return web.json_response({"message": f"fault {status}"}, status=status)
        if request.headers.get("X-Api-Key") != API_KEY:
            return web.json_response({"message": "Forbidden"}, status=403)
        if not self._token_ok(request.headers.get("Authorization", "")):
            return web.json_response({"message": "Unauthorized"}, status=401)
        return None

    def _token_ok(self, header: str) -> bool:
        token = header.removeprefix("Bearer ")
        try:
            claims = jwt.decode(token, self._key.public_key(), algorithms=["RS256"])
        except jwt.PyJWTError:
            return False
        return claims.get("token_use") == "access" and claims.get("jti") in self._issued

    async def _jwks(self, request: web.Request) -> web.Response:
        if self.jwks_empty:
            return web.json_response({"keys": []})
        key = dict(RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True))
        key |= {"kid": _KID, "alg": "RS256", "use": "sig"}
        return web.json_response({"keys": [key]})

    async def _cognito(self, request: web.Request) -> web.Response:
        target = request.headers.get("X-Amz-Target", "").removeprefix(_TARGET_PREFIX)
        body = json.loads(await request.read())
        try:
            answer = self._cognito_answer(target, body, request)
        except CognitoError as fault:
            payload = {"__type": fault.kind, "message": str(fault)}
            return web.Response(
                text=json.dumps(payload), status=fault.status, content_type=_AMZ_JSON
            )
        return web.Response(text=json.dumps(answer), content_type=_AMZ_JSON)

    def _cognito_answer(
        self, target: str, body: dict[str, Any], request: web.Request
    ) -> dict[str, Any]:
        if self.cognito_faults:
            status, kind = self.cognito_faults.pop(0)
            raise CognitoError(kind, "injected fault", status)
        if body.get("ClientId") != CLIENT_ID:
            raise CognitoError("ResourceNotFoundException", "User pool client does not exist.")
        if target == "InitiateAuth":
            return self._initiate(body, request)
        if target == "RespondToAuthChallenge":
            self.calls["RespondToAuthChallenge"] += 1
            return self._respond(body, request)
        raise CognitoError("InvalidAction", f"unsupported target {target}")

    def _initiate(self, body: dict[str, Any], request: web.Request) -> dict[str, Any]:
        flow, params = body.get("AuthFlow"), body.get("AuthParameters", {})
        self.calls[f"InitiateAuth:{flow}"] += 1
        if flow == "REFRESH_TOKEN_AUTH":
            if params.get("REFRESH_TOKEN") not in self._refresh_tokens:
                raise CognitoError("NotAuthorizedException", "Invalid Refresh Token")
            if params.get("SECRET_HASH") not in (
                _secret_hash(self.username),
                _secret_hash(self.sub),
            ):
                raise CognitoError("NotAuthorizedException", "Unable to verify secret hash")
            return {"AuthenticationResult": self._tokens(request, refresh=False)}
        if flow != "USER_SRP_AUTH":
            raise CognitoError("InvalidParameterException", f"unsupported flow {flow}")
        if params.get("USERNAME") != self.username:
            raise CognitoError("NotAuthorizedException", "Incorrect username or password.")
        if params.get("SECRET_HASH") != _secret_hash(self.username):
            raise CognitoError("NotAuthorizedException", "Unable to verify secret hash")
        big_a = int(params["SRP_A"], 16)
        if big_a % _N == 0:
            raise CognitoError("InvalidParameterException", "SRP_A is invalid")
        small_b = secrets.randbelow(_N - 2) + 1
        big_b = (_K * self._verifier + pow(_G, small_b, _N)) % _N
        block = base64.b64encode(secrets.token_bytes(64)).decode()
        self._challenges[block] = _Challenge(self.sub, big_a, small_b, big_b, self._salt)
        parameters = {"SALT": self._salt, "SECRET_BLOCK": block, "SRP_B": f"{big_b:x}"}
        parameters |= {"USERNAME": self.sub, "USER_ID_FOR_SRP": self.sub}
        return {"ChallengeName": "PASSWORD_VERIFIER", "ChallengeParameters": parameters}

    def _respond(self, body: dict[str, Any], request: web.Request) -> dict[str, Any]:
        answers = body.get("ChallengeResponses", {})
        challenge = self._challenges.pop(answers.get("PASSWORD_CLAIM_SECRET_BLOCK", ""), None)
        if body.get("ChallengeName") != "PASSWORD_VERIFIER" or challenge is None:
            raise CognitoError("NotAuthorizedException", "Invalid session for the user.")
        if answers.get("SECRET_HASH") != _secret_hash(answers.get("USERNAME", "")):
            raise CognitoError("NotAuthorizedException", "Unable to verify secret hash")
        stamp = answers.get("TIMESTAMP", "")
        if not _TIMESTAMP.match(stamp):
            raise CognitoError("InvalidParameterException", "TIMESTAMP format is invalid")
        scrambler = int(_hash_hex(_padded(challenge.big_a) + _padded(challenge.big_b)), 16)
        base = challenge.big_a * pow(self._verifier, scrambler, _N)
        key = _session_key(pow(base, challenge.small_b, _N), scrambler)
        block = base64.b64decode(answers["PASSWORD_CLAIM_SECRET_BLOCK"])
        message = _POOL_NAME.encode() + challenge.sub.encode() + block + stamp.encode()
        expected = base64.b64encode(hmac.new(key, message, "sha256").digest()).decode()
        if not hmac.compare_digest(expected, answers.get("PASSWORD_CLAIM_SIGNATURE", "")):
            raise CognitoError("NotAuthorizedException", "Incorrect username or password.")
        if self.next_challenge is not None:
            name, self.next_challenge = self.next_challenge, None
            return {"ChallengeName": name, "Session": "s", "ChallengeParameters": {}}
        return {
            "AuthenticationResult": self._tokens(request, refresh=True),
            "ChallengeParameters": {},
        }

    def _tokens(self, request: web.Request, *, refresh: bool) -> dict[str, Any]:
        now = time.time()
        issued = int(now)
        # Whole seconds, as JWTs carry them, yet never less than token_lifetime from now.
        self.expires_at = math.ceil(now + self.token_lifetime)
        issuer = f"{request.scheme}://{request.host}/{POOL_ID}"
        common = {
            "iss": issuer,
            "sub": self.sub,
            "iat": issued,
            "exp": self.expires_at,
        }
        token_id = secrets.token_hex(8)
        access = common | {"token_use": "access", "client_id": CLIENT_ID, "jti": token_id}
        identity = common | {"token_use": "id", "aud": CLIENT_ID, "email": self.username}
        self._issued.add(token_id)
        result: dict[str, Any] = {
            "AccessToken": jwt.encode(access, self._key, "RS256", headers={"kid": _KID}),
            "IdToken": jwt.encode(identity, self._key, "RS256", headers={"kid": _KID}),
            "ExpiresIn": self.token_lifetime,
            "TokenType": "Bearer",
        }
        if refresh:
            result["RefreshToken"] = secrets.token_urlsafe(32)
            self._refresh_tokens.add(result["RefreshToken"])
        return result

    def _add_api_routes(self) -> None:
        routes = self.app.router
        routes.add_get("/v1/users/@me", self._me)
        routes.add_get("/v1/devices", self._devices)
        routes.add_get("/v1/devices/{device}", self._device)
        routes.add_put("/v1/devices/{device}", self._put_device)
        routes.add_post("/v1/devices/{device}/commands", self._command)
        routes.add_get("/v1/devices/{device}/storage/accesscode", self._codes)
        routes.add_get("/v1/devices/{device}/logs", self._logs)
        routes.add_get("/v1/notifications", self._notifications)
        routes.add_post("/v1/notifications", self._save_notification)
        routes.add_put("/v1/notifications", self._save_notification)
        routes.add_delete("/v1/notifications/{notification}", self._delete_notification)

    def _lock(self, request: web.Request) -> FakeLock:
        lock = self.locks.get(request.match_info["device"])
        if lock is None:
            raise web.HTTPNotFound(
                text='{"message": "Device not found"}', content_type="application/json"
            )
        return lock

    async def _me(self, request: web.Request) -> web.Response:
        self.calls["GET users/@me"] += 1
        return web.json_response({"identityId": self.user_id, "email": self.username})

    async def _devices(self, request: web.Request) -> web.Response:
        self.calls["GET devices"] += 1
        return web.json_response([lock.to_json(self.user_id) for lock in self.locks.values()])

    async def _device(self, request: web.Request) -> web.Response:
        self.calls["GET device"] += 1
        return web.json_response(self._lock(request).to_json(self.user_id))

    async def _put_device(self, request: web.Request) -> web.Response:
        self.calls["PUT device"] += 1
        lock = self._lock(request)
        attributes = (await request.json()).get("attributes", {})
        if "lockState" in attributes:
            self._move(lock, int(attributes["lockState"]))
        return web.json_response(lock.to_json(self.user_id))

    def _move(self, lock: FakeLock, target: int) -> None:
        if lock.jam_next:
            lock.jam_next = False
            lock.lock_state = _JAMMED
            self.log(lock, 10)
            return
        lock.lock_state = target
        self.log(lock, 6 if target == _LOCKED else 7, accessor=self.user_id)

    async def _command(self, request: web.Request) -> web.Response:
        lock = self._lock(request)
        body = await request.json()
        name, data = body.get("name"), body.get("data", {})
        self.calls[f"command:{name}"] += 1
        response = self._run_command(lock, name, data)
        if self.command_stalls:
            await asyncio.sleep(self.command_stalls.pop(0))  # acted already
        return response

    def _run_command(self, lock: FakeLock, name: object, data: dict[str, Any]) -> web.Response:
        if name == "changelockstate":
            self._move(lock, int(data["state"]))
            return web.json_response({})
        if name == "addaccesscode":
            return self._add_code(lock, data)
        if name == "deleteaccesscode":
            removed = lock.codes.pop(data.get("accesscodeId", ""), None)
            if removed is not None:
                self.log(lock, 15)
            return web.json_response({})
        return web.json_response({"message": f"Unsupported command {name}"}, status=400)

    def _add_code(self, lock: FakeLock, data: dict[str, Any]) -> web.Response:
        if data.get("accessCodeLength") != lock.code_length:
            return web.json_response({"message": "Invalid access code length"}, status=400)
        if any(stored["accessCode"] == data["accessCode"] for stored in lock.codes.values()):
            return web.json_response({"message": "Access code already exists"}, status=409)
        if len(lock.codes) >= lock.max_codes:
            return web.json_response(
                {"message": "Maximum number of access codes reached"}, status=400
            )
        code_id = str(uuid.uuid4())
        lock.codes[code_id] = dict(data, accesscodeId=code_id, notification=0)
        self.log(lock, 14)
        return web.json_response({"accesscodeId": code_id})

    async def _codes(self, request: web.Request) -> web.Response:
        self.calls["GET accesscode"] += 1
        return web.json_response(list(self._lock(request).codes.values()))

    async def _logs(self, request: web.Request) -> web.Response:
        self.calls["GET logs"] += 1
        entries = list(self._lock(request).logs)
        if request.query.get("sort") == "desc":
            entries.reverse()
        limit = int(request.query.get("limit", "0") or 0)
        return web.json_response(entries[:limit] if limit else entries)

    async def _notifications(self, request: web.Request) -> web.Response:
        device = request.query.get("deviceId")
        found = [n for n in self.notifications.values() if n["deviceId"] == device]
        return web.json_response(found)

    async def _save_notification(self, request: web.Request) -> web.Response:
        if self.notification_faults:
            self.notification_faults -= 1
            return web.json_response({"message": "Internal Server Error"}, status=500)
        body = await request.json()
        now = _iso(datetime.now(UTC))
        stored = self.notifications.get(body["notificationId"], {"createdAt": now})
        stored |= body | {"userId": self.user_id, "deviceId": request.query["deviceId"]}
        stored["updatedAt"] = now
        self.notifications[body["notificationId"]] = stored
        return web.json_response(stored)

    async def _delete_notification(self, request: web.Request) -> web.Response:
        self.notifications.pop(request.match_info["notification"], None)
        return web.Response(status=204)
