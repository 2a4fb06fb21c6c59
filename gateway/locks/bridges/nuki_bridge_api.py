"""The Nuki Bridge HTTP API (v1.13) on the wire: token parameters in, JSON replies out.

Pure functions, no I/O: ``token_params`` builds the query parameters of the three token modes;
``parse_*`` turn a reply body (or a callback POST body) into typed values or raise
BridgeFormatError. The bridge side of the token check (``check_*``) lives here too, for the fake.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any, TypeVar

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

from cloud_sync.protocol import jsoncodec
from cloud_sync.protocol.errors import MalformedError

from ..driver import DoorState, LockError, LockState, LockUnreachableError

T = TypeVar("T")

# The token's timestamp format (ISO 8601, UTC, whole seconds), e.g. 2019-03-05T01:06:53Z.
TS_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# rnr is a uint16 in the API; the nonce of the encrypted token is XSalsa20's 24 bytes.
RNR_MAX = 65535
NONCE_BYTES = SecretBox.NONCE_SIZE
# The bridge accepts a hashed or encrypted token for 60 s around its own clock.
TOKEN_WINDOW_SECONDS = 60
# A callback URL is at most 254 characters, http only (the bridge speaks no TLS).
MAX_CALLBACK_URL = 254
MAX_CALLBACKS = 3


class NukiBridgeError(LockError):
    """Base of the Nuki Bridge driver's errors."""


class BridgeFormatError(NukiBridgeError, LockUnreachableError):
    """The bridge (or a caller posing as it) sent something that is not the documented JSON."""


class BridgeFailedError(NukiBridgeError, LockUnreachableError):
    """The bridge answered ``success: false``: it could not reach or move the lock."""


class AuthMode(StrEnum):
    """How the API token travels: encrypted (bridge fw >= 2.14.0 / 1.22.1), hashed, plain."""

    ENCRYPTED = "encrypted"
    HASHED = "hashed"
    PLAIN = "plain"


class DeviceType(IntEnum):
    """``deviceType`` values of the API."""

    SMARTLOCK = 0  # Smart Lock 1.0 / 2.0
    OPENER = 2
    SMARTDOOR = 3
    SMARTLOCK3 = 4  # Smart Lock 3.0 (Pro) and later


class LockAction(IntEnum):
    """``action`` values of /lockAction for smart locks."""

    UNLOCK = 1
    LOCK = 2
    UNLATCH = 3
    LOCK_N_GO = 4
    LOCK_N_GO_WITH_UNLATCH = 5


# state -> what it means for the bolt; absent numbers (uncalibrated, undefined) are UNKNOWN.
_BOLT = {
    1: LockState.LOCKED,
    3: LockState.UNLOCKED,
    5: LockState.UNLOCKED,  # unlatched
    6: LockState.UNLOCKED,  # unlocked (lock'n'go)
    7: LockState.UNLOCKED,  # unlatching: the bolt is already back
    254: LockState.JAMMED,  # motor blocked
}
# The bolt is on its way: the state before it still holds for the hub.
MOVING_STATES = frozenset({2, 4})  # unlocking, locking
_DOOR = {2: DoorState.CLOSED, 3: DoorState.OPEN}


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A lock's state as /lockState, /list (lastKnownState) and callbacks report it."""

    state: int
    state_name: str = ""
    mode: int | None = None
    battery_critical: bool | None = None
    battery_charging: bool | None = None
    battery_charge: int | None = None
    keypad_battery_critical: bool | None = None
    door_sensor: int | None = None

    @property
    def bolt(self) -> LockState:
        """The hub's view of ``state``."""
        return _BOLT.get(self.state, LockState.UNKNOWN)

    @property
    def moving(self) -> bool:
        """True while the bolt is unlocking or locking."""
        return self.state in MOVING_STATES

    @property
    def door(self) -> DoorState:
        """The door sensor's reading (UNKNOWN without a sensor or while calibrating)."""
        return _DOOR.get(self.door_sensor or 0, DoorState.UNKNOWN)

    @property
    def battery_low(self) -> bool:
        """True when the lock or its keypad reports a critical battery."""
        return bool(self.battery_critical or self.keypad_battery_critical)


@dataclass(frozen=True, slots=True)
class Device:
    """One entry of /list."""

    nuki_id: int
    device_type: int
    name: str
    last_known: DeviceState | None


@dataclass(frozen=True, slots=True)
class CallbackReport:
    """The body the bridge POSTs to each registered callback URL on every state change."""

    nuki_id: int
    device_type: int
    state: DeviceState


@dataclass(frozen=True, slots=True)
class Outcome:
    """The reply of /lockAction, /callback/add and /callback/remove."""

    success: bool
    battery_critical: bool | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class RegisteredCallback:
    """One entry of /callback/list."""

    id: int
    url: str


@dataclass(frozen=True, slots=True)
class BridgeInfo:
    """The parts of /info the driver shows."""

    bridge_type: int
    firmware_version: str | None
    current_time: str | None


@dataclass(frozen=True, slots=True)
class AuthReply:
    """The reply of /auth: the token once the bridge's button was pressed."""

    success: bool
    token: str | None


# Tokens.


def token_params(
    mode: AuthMode, token: str, *, now: datetime, rnr: int, nonce: bytes
) -> dict[str, str]:
    """The query parameters that authenticate one request (a fresh rnr/nonce for each)."""
    if mode is AuthMode.PLAIN:
        return {"token": token}
    if not 0 <= rnr <= RNR_MAX or len(nonce) != NONCE_BYTES:
        raise ValueError("rnr must be a uint16 and the nonce 24 bytes")
    ts = now.astimezone(UTC).strftime(TS_FORMAT)
    if mode is AuthMode.HASHED:
        digest = hashlib.sha256(f"{ts},{rnr},{token}".encode()).hexdigest()
        return {"ts": ts, "rnr": str(rnr), "hash": digest}
    sealed = SecretBox(_box_key(token)).encrypt(f"{ts},{rnr}".encode(), nonce).ciphertext
    return {"ctoken": sealed.hex(), "nonce": nonce.hex()}


def check_hashed(token: str, ts: str, rnr: str, digest: str) -> tuple[datetime, int]:
    """The bridge's check of a hashed token: its (time, rnr), or BridgeFormatError."""
    expected = hashlib.sha256(f"{ts},{rnr},{token}".encode()).hexdigest()
    if not hmac.compare_digest(expected.encode(), digest.lower().encode()):
        raise BridgeFormatError("hashed token does not match")
    return _ts_rnr(f"{ts},{rnr}")


def check_encrypted(token: str, ctoken: str, nonce: str) -> tuple[datetime, int]:
    """The bridge's check of an encrypted token: its (time, rnr), or BridgeFormatError."""
    try:
        plain = SecretBox(_box_key(token)).decrypt(bytes.fromhex(ctoken), bytes.fromhex(nonce))
        return _ts_rnr(plain.decode("ascii"))
    except (ValueError, CryptoError, UnicodeDecodeError) as exc:
        raise BridgeFormatError("encrypted token does not open") from exc


def _box_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _ts_rnr(text: str) -> tuple[datetime, int]:
    ts, _, rnr = text.partition(",")
    try:
        moment = datetime.strptime(ts, TS_FORMAT).replace(tzinfo=UTC)
        number = int(rnr)
    except ValueError as exc:
        raise BridgeFormatError("token timestamp or rnr is malformed") from exc
    if not (rnr.isdigit() and 0 <= number <= RNR_MAX):
        raise BridgeFormatError("token rnr is not a uint16")
    return moment, number


# Replies.


def parse_list(raw: bytes) -> list[Device]:
    """/list: the paired devices and their last known states."""
    return [_device(item) for item in _array(_json(raw))]


def parse_lock_state(raw: bytes) -> DeviceState:
    """/lockState: the lock's state; BridgeFailedError on ``success: false``."""
    body = _object(_json(raw))
    if _opt(body, "success", bool) is False:
        raise BridgeFailedError("the bridge could not read the lock's state")
    return _state(body)


def parse_outcome(raw: bytes) -> Outcome:
    """/lockAction, /callback/add, /callback/remove: success and what the bridge adds."""
    body = _object(_json(raw))
    return Outcome(
        success=_req(body, "success", bool),
        battery_critical=_opt(body, "batteryCritical", bool),
        message=_opt(body, "message", str),
    )


def parse_callback_list(raw: bytes) -> list[RegisteredCallback]:
    """/callback/list: the registered callbacks with their ids."""
    entries = _array(_req(_object(_json(raw)), "callbacks", list))
    callbacks = []
    for entry in entries:
        item = _object(entry)
        callbacks.append(RegisteredCallback(_req(item, "id", int), _req(item, "url", str)))
    return callbacks


def parse_info(raw: bytes) -> BridgeInfo:
    """/info: bridge type (1 hardware, 2 software), firmware version and the bridge's time."""
    body = _object(_json(raw))
    versions = _opt(body, "versions", dict) or {}
    return BridgeInfo(
        bridge_type=_req(body, "bridgeType", int),
        firmware_version=_opt(versions, "firmwareVersion", str),
        current_time=_opt(body, "currentTime", str),
    )


def parse_auth(raw: bytes) -> AuthReply:
    """/auth: ``success`` and, once the button was pressed, the token."""
    body = _object(_json(raw))
    success = _req(body, "success", bool)
    token = _opt(body, "token", str)
    if success and not token:
        raise BridgeFormatError("/auth succeeded without a token")
    return AuthReply(success, token if success else None)


def parse_callback(raw: bytes) -> CallbackReport:
    """A callback POST body: which device, and its new state."""
    body = _object(_json(raw))
    return CallbackReport(_req(body, "nukiId", int), _req(body, "deviceType", int), _state(body))


# Field readers: every mismatch is a BridgeFormatError, nothing else escapes.


def _json(raw: bytes) -> Any:
    try:
        return jsoncodec.loads(raw)
    except MalformedError as exc:
        raise BridgeFormatError(f"the reply is not JSON ({exc})") from exc


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BridgeFormatError("expected a JSON object")
    return value


def _array(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise BridgeFormatError("expected a JSON array")
    return value


def _device(value: Any) -> Device:
    item = _object(value)
    last = _opt(item, "lastKnownState", dict)
    return Device(
        nuki_id=_req(item, "nukiId", int),
        device_type=_req(item, "deviceType", int),
        name=_opt(item, "name", str) or "",
        last_known=_state(last) if last is not None else None,
    )


def _state(body: dict[str, Any]) -> DeviceState:
    charge = _opt(body, "batteryChargeState", int)
    if charge is not None and not 0 <= charge <= 100:
        raise BridgeFormatError("batteryChargeState is not a percentage")
    return DeviceState(
        state=_byte(_req(body, "state", int), "state"),
        state_name=_opt(body, "stateName", str) or "",
        mode=_opt(body, "mode", int),
        battery_critical=_opt(body, "batteryCritical", bool),
        battery_charging=_opt(body, "batteryCharging", bool),
        battery_charge=charge,
        keypad_battery_critical=_opt(body, "keypadBatteryCritical", bool),
        door_sensor=_byte(_opt(body, "doorsensorState", int), "doorsensorState"),
    )


def _byte(value: T, name: str) -> T:
    if isinstance(value, int) and not 0 <= value <= 255:
        raise BridgeFormatError(f"{name} is out of range")
    return value


def _req(body: dict[str, Any], key: str, kind: type[T]) -> T:
    value = _opt(body, key, kind)
    if value is None:
        raise BridgeFormatError(f"field {key!r} is missing")
    return value


def _opt(body: dict[str, Any], key: str, kind: type[T]) -> T | None:
    value = body.get(key)
    if value is None:
        return None
    # bool is an int in Python; the API never uses one for the other.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BridgeFormatError(f"field {key!r} is not a {kind.__name__}")
    return value
