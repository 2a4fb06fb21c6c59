"""Schlage WiFi locks through Schlage's cloud, on pyschlage (synchronous: run in threads).

Every pyschlage call runs in a worker thread and holds its account's ``threading.Lock`` there,
so calls on one account stay serialised even when the coordinator gives up waiting on one (a
cancelled ``to_thread`` leaves its thread running). Foreign errors are translated in
``SchlageAccount.call`` and nowhere else. Keypad codes carry a temporary schedule, so the lock
itself enforces the window; unlocks are attributed from the cloud's activity log, polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import stat
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pycognito  # type: ignore[import-untyped]
import requests
import structlog
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from pycognito.exceptions import (  # type: ignore[import-untyped]
    ForceChangePasswordException,
    MFAChallengeException,
    WarrantException,
)
from pycognito.utils import RequestsSrpAuth  # type: ignore[import-untyped]
from pydantic import Field, model_validator
from pyschlage import Auth, Lock, Schlage
from pyschlage.auth import CLIENT_ID, CLIENT_SECRET, USER_POOL_ID, USER_POOL_REGION
from pyschlage.code import AccessCode, TemporarySchedule
from pyschlage.exceptions import Error as PySchlageError
from pyschlage.exceptions import NotAuthorizedError, UnknownError
from pyschlage.log import LockLog

from cloud_sync.protocol.tomlconfig import Section

from ...config import LockSection
from ...errors import ConfigError
from ..credentials import CredentialStore
from ..driver import (
    DoorState,
    DuplicateCodeError,
    EventKind,
    EventQueue,
    KeypadCode,
    KeypadFullError,
    LockError,
    LockEvent,
    LockJammedError,
    LockRefusedError,
    LockState,
    LockStatus,
    LockUnreachableError,
    Trigger,
)
from ..pairing import PairUI
from ..registry import DriverContext, parse_options

T = TypeVar("T")
log = structlog.get_logger(__name__)

VENDOR = "schlage"
CREDENTIAL_KIND = "schlage"  # {"username", "password", "device_id"} saved by pair()
STATE_KIND = "schlage-state"  # {"codes": {schlage id: int}, "next_code": int, "log": cursor}
# Home Assistant's Schlage integration reads every lock's state and log each 30 s for its whole
# user base without being throttled; polling the log at that rate adds no unusual load.
LOG_POLL_INTERVAL = 30.0
# After failed polls (429, 5xx) wait longer, doubling up to 5 min, so a struggling cloud recovers.
LOG_POLL_MAX_BACKOFF = 300.0
# Newest entries read per poll: a lock does not log 50 entries in 30 s; more would be lost.
LOG_PAGE = 50
# One cloud round trip (connect, read). Below the coordinator's 8 s status timeout, so a worker
# thread the coordinator stopped waiting for ends soon and frees the account for the retry.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 6.0
# Cognito (SRP login, token refresh) gets the same budget; botocore's own retries are off
# because the coordinator retries, and retries stacked on retries would outlast its timeouts.
NO_BOTOCORE_RETRIES = {"total_max_attempts": 1}
# Past the coordinator's 15 s unlock timeout a longer wait only keeps a dead thread busy.
MAX_READ_TIMEOUT = 15.0
# Schlage keypads take 4-8 digit codes (all of one length, set on the lock).
MIN_CODE_DIGITS = 4
MAX_CODE_DIGITS = 8
DEFAULT_API_BASE = "https://api.allegion.yonomi.cloud/v1"
_REPAIR = "pair again: lockhub gateway pair schlage --lock {lock_id}"
_EXPOSING_BITS = stat.S_IRWXG | stat.S_IRWXO


class SchlageUnreachableError(LockUnreachableError):
    """Schlage's cloud did not answer, timed out, was busy (429/5xx) or answered garbage."""


class SchlageAuthError(LockRefusedError):
    """Schlage refused the account's credentials: pair the lock again."""


# Log entries: pure parsing and bookkeeping, no I/O.

# Entries up to 10 min older than the newest one seen are still compared by id, in case the
# cloud stores an entry late; older ones are taken as already handled.
LOG_OVERLAP = timedelta(minutes=10)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_U, _L = EventKind.UNLOCKED, EventKind.LOCKED
# Schlage event codes (pyschlage.log.LOG_EVENT_TYPES) that mean something to the hub.
_LOG_GROUPS: tuple[tuple[tuple[int, ...], EventKind, Trigger], ...] = (
    ((2,), _U, Trigger.KEYPAD),
    ((1, 64), _L, Trigger.KEYPAD),
    ((4, 48, 68, 70, 76), _U, Trigger.MANUAL),  # thumb turn, inside button/lever, key
    ((3, 5, 49, 69), _L, Trigger.MANUAL),  # thumb turn, 1-touch, inside button
    ((7, 26), _U, Trigger.REMOTE),  # mobile device (app or this hub), remote
    ((6, 25, 65), _L, Trigger.REMOTE),
    ((9,), _U, Trigger.AUTO),
    ((8, 47), _L, Trigger.AUTO),  # auto-lock timer, scheduled locking
    ((52, 60, 75, 82), _U, Trigger.UNKNOWN),  # Apple key, UWB, key fob, linked lock
    ((53, 59, 74, 81, 83), _L, Trigger.UNKNOWN),
    ((10, 54, 55, 56), EventKind.JAMMED, Trigger.UNKNOWN),
    ((11,), EventKind.KEYPAD_DENIED, Trigger.KEYPAD),  # keypad disabled after wrong codes
    ((21, 29), EventKind.BATTERY, Trigger.UNKNOWN),  # low, critical
    ((71,), EventKind.DOOR_OPENED, Trigger.UNKNOWN),
    ((72,), EventKind.DOOR_CLOSED, Trigger.UNKNOWN),
)
_LOG_MEANINGS = {code: (kind, why) for codes, kind, why in _LOG_GROUPS for code in codes}


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One activity-log entry: what happened, when, and by which access code."""

    log_id: str
    created_at: datetime
    event_code: int
    access_code_id: str | None = None


def classify(event_code: int) -> tuple[EventKind, Trigger] | None:
    """The event kind and trigger of a Schlage event code; None for codes the hub ignores."""
    return _LOG_MEANINGS.get(event_code)


def parse_logs(raw: object) -> list[LogEntry]:
    """Parse ``GET devices/{id}/logs``; SchlageUnreachableError for anything malformed."""
    if not isinstance(raw, list):
        raise SchlageUnreachableError("Schlage log answer is not a list")
    return [_parse_entry(item) for item in raw]


def _parse_entry(item: object) -> LogEntry:
    # pyschlage's Lock.logs() drops logId, the entry's identity; parse its model from the raw
    # JSON and keep the id alongside.
    if not isinstance(item, dict) or not isinstance(item.get("logId"), str):
        raise SchlageUnreachableError("Schlage log entry without a logId")
    try:
        entry = LockLog.from_json(item)
    except (LookupError, TypeError, ValueError, AttributeError) as exc:
        raise SchlageUnreachableError(f"malformed Schlage log entry: {exc!r}") from None
    code, keypad = entry.event_code, entry.access_code_id
    if isinstance(code, bool) or not isinstance(code, int):
        raise SchlageUnreachableError(f"malformed Schlage log entry: event code {code!r}")
    if keypad is not None and not isinstance(keypad, str):
        raise SchlageUnreachableError("malformed Schlage log entry: keypadUuid is not text")
    created = entry.created_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return LogEntry(item["logId"], created, code, keypad)


@dataclass(slots=True)
class LogCursor:
    """Which log entries were already handled: a newest-seen mark and the ids near it."""

    newest: datetime | None = None
    seen: dict[str, datetime] = field(default_factory=dict)

    @property
    def started(self) -> bool:
        """False until the first read (which only marks the history as handled)."""
        return self.newest is not None

    def advance(self, entries: list[LogEntry]) -> list[LogEntry]:
        """The entries not handled before, oldest first; marks them handled."""
        fresh = [e for e in sorted(entries, key=lambda e: e.created_at) if self._is_new(e)]
        first = not self.started
        for entry in entries:
            self.seen[entry.log_id] = entry.created_at
        self.newest = max([self.newest or _EPOCH, *(e.created_at for e in entries)])
        horizon = self.newest - LOG_OVERLAP
        self.seen = {k: v for k, v in self.seen.items() if v >= horizon}
        return [] if first else fresh

    def _is_new(self, entry: LogEntry) -> bool:
        if entry.log_id in self.seen:
            return False
        return self.newest is None or entry.created_at >= self.newest - LOG_OVERLAP

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form for the state file."""
        newest = self.newest.isoformat() if self.newest else None
        return {"newest": newest, "seen": {k: v.isoformat() for k, v in self.seen.items()}}

    @classmethod
    def from_json(cls, data: object) -> LogCursor:
        """Read ``to_json``'s form back; a damaged or missing one starts afresh."""
        if not isinstance(data, dict) or not isinstance(data.get("newest"), str):
            return cls()
        try:
            seen = {str(k): datetime.fromisoformat(v) for k, v in dict(data["seen"]).items()}
            return cls(datetime.fromisoformat(data["newest"]), seen)
        except (TypeError, ValueError, KeyError):
            return cls()


class SchlageOptions(Section):
    """``options`` of a ``schlage`` lock."""

    device_id: str | None = Field(default=None, min_length=1)
    name: str | None = Field(default=None, min_length=1)
    username: str | None = Field(default=None, min_length=3)
    password_file: Path | None = None
    # Self-hosting and tests: where the Schlage API and the Cognito pool answer.
    api_base: str = Field(default=DEFAULT_API_BASE, pattern=r"^https?://")
    cognito_endpoint: str | None = Field(default=None, pattern=r"^https?://")
    # Seconds to wait for one answer; the default suits the coordinator's timeouts (see above).
    read_timeout: float = Field(default=READ_TIMEOUT, gt=0, le=MAX_READ_TIMEOUT)

    @model_validator(mode="after")
    def _consistent(self) -> SchlageOptions:
        if self.device_id is not None and self.name is not None:
            raise ValueError("give device_id or name, not both")
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs username")
        return self


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the Schlage API and its Cognito pool answer (None: AWS's own), and how long to wait."""

    api_base: str = DEFAULT_API_BASE
    cognito: str | None = None
    read_timeout: float = READ_TIMEOUT


class _HubAuth(Auth):
    """pyschlage's Auth with our endpoints and timeouts, through its constructor arguments."""

    def __init__(self, username: str, password: str, endpoints: Endpoints) -> None:
        super().__init__(username, password)
        self._api_base = endpoints.api_base.rstrip("/")
        self._timeout = (CONNECT_TIMEOUT, endpoints.read_timeout)
        client_kwargs = {"endpoint_url": endpoints.cognito} if endpoints.cognito else None
        self.cognito = pycognito.Cognito(
            username=username,
            user_pool_region=USER_POOL_REGION,
            user_pool_id=USER_POOL_ID,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            botocore_config=Config(
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=endpoints.read_timeout,
                retries=NO_BOTOCORE_RETRIES,
            ),
            boto3_client_kwargs=client_kwargs,
        )
        self.auth = RequestsSrpAuth(password=password, cognito=self.cognito)

    def request(self, method: str, path: str, base_url: str | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, path, base_url or self._api_base, **kwargs)

    @property
    def has_session(self) -> bool:
        return bool(self.cognito.access_token)

    def forget_session(self) -> None:
        self.cognito.access_token = self.cognito.id_token = self.cognito.refresh_token = None


class SchlageAccount:
    """One Schlage account: its pyschlage session and the lock serialising calls on it."""

    def __init__(self, username: str, password: str, endpoints: Endpoints) -> None:
        self._guard = threading.Lock()
        self._password = password
        self._auth = _HubAuth(username, password, endpoints)
        self.api = Schlage(self._auth)

    def get_json(self, path: str, params: dict[str, Any]) -> object:
        """GET ``path`` through the session (blocking; call inside ``call``)."""
        return self._auth.request("get", path, params=params).json()

    def same_password(self, password: str) -> bool:
        """True when ``password`` is the one this session logs in with."""
        return hmac.compare_digest(password.encode(), self._password.encode())

    def call(self, work: Callable[[], T]) -> T:
        """Run ``work`` (blocking) alone on this account, pyschlage errors translated.

        A rejected session (expired refresh token, revoked access token) is dropped and
        ``work`` runs once more after a fresh login; neither rejection lets a request act.
        """
        with self._guard:
            had_session = self._auth.has_session
            try:
                return _translated(work)
            except SchlageAuthError:
                if not had_session:
                    raise
                log.info("schlage.session_renewed")
                self._auth.forget_session()
            return _translated(work)


_ACCOUNTS: dict[tuple[Endpoints, str], SchlageAccount] = {}
_ACCOUNTS_GUARD = threading.Lock()


def account(username: str, password: str, endpoints: Endpoints) -> SchlageAccount:
    """The shared session for this account (one per process); a new one if the password changed."""
    key = (endpoints, username.casefold())
    with _ACCOUNTS_GUARD:
        found = _ACCOUNTS.get(key)
        if found is None or not found.same_password(password):
            found = _ACCOUNTS[key] = SchlageAccount(username, password, endpoints)
        return found


def _translated(work: Callable[[], T]) -> T:
    try:
        return work()
    except LockError:
        raise
    except NotAuthorizedError as exc:
        raise SchlageAuthError(f"Schlage refused the account: {exc}") from None
    except UnknownError as exc:
        raise _from_status(exc) from None
    except (requests.Timeout, requests.ConnectionError, BotoCoreError) as exc:
        raise SchlageUnreachableError(f"Schlage cloud unreachable: {type(exc).__name__}") from None
    except (MFAChallengeException, ForceChangePasswordException) as exc:
        what = "asks for MFA" if isinstance(exc, MFAChallengeException) else "needs a new password"
        raise SchlageAuthError(
            f"the Schlage account {what}; use one the hub can log in to"
        ) from None
    except (PySchlageError, WarrantException, NotImplementedError) as exc:
        raise SchlageUnreachableError(f"Schlage cloud answered oddly: {exc}") from None
    except (LookupError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise SchlageUnreachableError(f"Schlage cloud answered malformed data: {exc!r}") from None


def _from_status(exc: UnknownError) -> LockError:
    """Classify pyschlage's UnknownError by the HTTP answer (or AWS error) that caused it."""
    cause = exc.__cause__
    status: int | None = None
    if isinstance(cause, requests.HTTPError) and cause.response is not None:
        status = cause.response.status_code
    elif isinstance(cause, ClientError):
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status in (401, 403):
        return SchlageAuthError(f"Schlage rejected the session ({status})")
    if status is None or status == 429 or status >= 500:
        return SchlageUnreachableError(f"Schlage cloud busy or failing ({status}): {exc}")
    return _refusal(str(exc), status)


def _refusal(message: str, status: int) -> LockRefusedError:
    """A 4xx answer: which refusal it is, read from Schlage's message."""
    text = message.casefold()
    if status == 409 or "exist" in text or "duplicate" in text:
        return DuplicateCodeError(f"Schlage: {message}")
    if "maximum" in text or "limit" in text or "full" in text:
        return KeypadFullError(f"Schlage: {message}")
    return LockRefusedError(f"Schlage refused ({status}): {message}")


@dataclass(slots=True)
class _Command:
    """A remote lock/unlock this hub sent: matched to its log entry so it is reported once."""

    request_id: str
    kind: EventKind
    sent_at: datetime
    confirmed: bool = False  # its event was emitted
    logged: bool = False  # its log entry was seen


# A command's own log entry appears within seconds; after 10 min it is not coming.
COMMAND_LOG_WINDOW = timedelta(minutes=10)
_REMOTE_TARGET = {EventKind.UNLOCKED: False, EventKind.LOCKED: True}


class SchlageLock:
    """One Schlage lock through the cloud; implements LockDriver."""

    def __init__(
        self,
        lock_id: str,
        *,
        account: SchlageAccount,
        device_id: str | None,
        device_name: str | None,
        store: CredentialStore,
        now: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._lock_id = lock_id
        self._account = account
        self._wanted_id = device_id
        self._wanted_name = device_name
        self._store = store
        self._now = now
        self._sleep = sleep
        self._device: Lock | None = None
        self._events = EventQueue()
        self._commands: dict[str, _Command] = {}
        self._code_ids: dict[str, int] = {}
        self._next_code = 1
        self._cursor = LogCursor()
        self._poller: asyncio.Task[None] | None = None

    @property
    def lock_id(self) -> str:
        """The lock's id in the hub config."""
        return self._lock_id

    @property
    def vendor(self) -> str:
        """Always ``schlage``."""
        return VENDOR

    @property
    def has_keypad(self) -> bool:
        """Schlage WiFi locks (Encode family) all have a keypad."""
        return True

    async def start(self) -> None:
        """Find the device, load the code map and log cursor, then poll the log."""
        saved = self._store.load(self._lock_id, STATE_KIND) or {}
        self._code_ids = {str(k): int(v) for k, v in saved.get("codes", {}).items()}
        self._next_code = int(saved.get("next_code", 1))
        self._cursor = LogCursor.from_json(saved.get("log"))
        self._device = await self._run(self._find_device)
        if not self._cursor.started:
            await self.poll_logs()  # history before pairing is not replayed
        self._poller = asyncio.create_task(
            self._poll_forever(), name=f"schlage-log:{self._lock_id}"
        )

    async def stop(self) -> None:
        """Stop polling and end the events iterator."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        self._events.close()

    async def status(self) -> LockStatus:
        """Refresh the device from the cloud: bolt, battery, door."""
        device = self._require_device()
        await self._run(device.refresh)
        return _status_of(device)

    async def unlock(self, request_id: str) -> None:
        """Unlock (PUT lockState 0), then read the state back; UNLOCKED carries ``request_id``."""
        await self._move(request_id, EventKind.UNLOCKED)

    async def lock(self, request_id: str) -> None:
        """Lock (PUT lockState 1), then read the state back; LOCKED carries ``request_id``."""
        await self._move(request_id, EventKind.LOCKED)

    async def add_keypad_code(self, code: KeypadCode) -> int:
        """Add ``code`` with a temporary schedule (the lock enforces it); return our int id."""
        device = self._require_device()
        _check_code(code)

        def work() -> str:
            existing = device.get_access_codes()
            earlier = _earlier_attempt(existing, code)
            if earlier is not None:  # an add whose answer was lost: adopt it, do not add twice
                return earlier
            _check_room(device, code, existing)
            access = AccessCode(
                name=code.name,
                code=code.code,
                schedule=TemporarySchedule(code.valid_from, code.valid_until),
            )
            try:
                device.add_access_code(access)
            except (PySchlageError, requests.RequestException):
                if access.access_code_id is None:
                    raise
                # The code is on the lock; only the app notification record failed.
                log.warning("schlage.code_notification_failed", lock_id=self._lock_id)
            if access.access_code_id is None:
                raise SchlageUnreachableError("Schlage did not return an access code id")
            return str(access.access_code_id)

        schlage_id = await self._run(work)
        code_id = self._int_id(schlage_id)
        self._save_state()
        log.info("schlage.code_added", lock_id=self._lock_id, code_id=code_id)
        return code_id

    async def remove_keypad_code(self, code_id: int) -> None:
        """Delete the access code we numbered ``code_id``; absent is not an error."""
        device = self._require_device()
        schlage_id = next((s for s, n in self._code_ids.items() if n == code_id), None)
        if schlage_id is None:
            return

        def work() -> bool:
            for access in device.get_access_codes():
                if access.access_code_id == schlage_id:
                    access.delete()  # type: ignore[no-untyped-call]  # pyschlage leaves it unannotated
                    return True
            return False

        removed = await self._run(work)
        log.info("schlage.code_removed", lock_id=self._lock_id, code_id=code_id, found=removed)

    def events(self) -> AsyncIterator[LockEvent]:
        """Every event in order until ``stop()``."""
        return self._events

    async def poll_logs(self) -> int:
        """Read the newest log entries once; emit each new one (never twice); return how many."""
        device = self._require_device()

        def work() -> list[LogEntry]:
            params = {"limit": LOG_PAGE, "sort": "desc"}
            path = LockLog.request_path(device.device_id)
            newest_first = parse_logs(self._account.get_json(path, params))
            return newest_first[::-1]  # same-millisecond entries keep the cloud's order

        entries = await self._run(work)
        fresh = self._cursor.advance(entries)
        self._save_state()  # before emitting: an entry is reported at most once, even on a crash
        emitted = 0
        for entry in fresh:
            emitted += self._emit_log(entry)
        return emitted

    async def _poll_forever(self) -> None:
        delay = LOG_POLL_INTERVAL
        while True:
            await self._sleep(delay)
            try:
                await self.poll_logs()
            except LockError as exc:
                delay = min(delay * 2, LOG_POLL_MAX_BACKOFF)
                log.warning(
                    "schlage.poll_failed", lock_id=self._lock_id, error=str(exc), next=delay
                )
            else:
                delay = LOG_POLL_INTERVAL

    async def _run(self, work: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(self._account.call, work)
        except SchlageAuthError as exc:
            advice = _REPAIR.format(lock_id=self._lock_id)
            raise SchlageAuthError(f"lock {self._lock_id}: {exc}; {advice}") from None

    def _find_device(self) -> Lock:
        for device in self._account.api.locks():
            if device.device_id == self._wanted_id or (
                self._wanted_id is None and device.name == self._wanted_name
            ):
                return device
        wanted = self._wanted_id or self._wanted_name
        raise LockRefusedError(f"lock {self._lock_id}: no Schlage lock {wanted!r} on this account")

    def _require_device(self) -> Lock:
        if self._device is None:
            raise LockUnreachableError(f"lock {self._lock_id}: driver not started")
        return self._device

    async def _move(self, request_id: str, kind: EventKind) -> None:
        device = self._require_device()
        locked = _REMOTE_TARGET[kind]
        command = self._commands.get(request_id)
        if command is not None and command.confirmed:
            return
        retry = command is not None
        if command is None:
            command = self._commands[request_id] = _Command(request_id, kind, self._now())

        def work() -> None:
            if retry:  # the first attempt may have acted before its answer was lost
                device.refresh()
                if device.is_locked is locked and not device.is_jammed:
                    return
            if locked:
                device.lock()  # type: ignore[no-untyped-call]  # pyschlage leaves it unannotated
            else:
                device.unlock()  # type: ignore[no-untyped-call]
            device.refresh()

        try:
            await self._run(work)
        except LockRefusedError:
            self._commands.pop(request_id, None)
            raise
        self._settle(command, device)

    def _settle(self, command: _Command, device: Lock) -> None:
        """Emit the command's event when the read-back state confirms it; else the log will."""
        if device.is_jammed:
            self._commands.pop(command.request_id, None)
            self._emit(EventKind.JAMMED, Trigger.REMOTE, f"cmd-{command.request_id}-jam")
            raise LockJammedError(f"lock {self._lock_id}: the bolt did not move")
        if device.is_locked is _REMOTE_TARGET[command.kind] and not command.confirmed:
            command.confirmed = True
            event_id = f"cmd-{command.request_id}"
            self._emit(command.kind, Trigger.REMOTE, event_id, request_id=command.request_id)

    def _emit_log(self, entry: LogEntry) -> int:
        meaning = classify(entry.event_code)
        if meaning is None:
            return 0
        kind, trigger = meaning
        request_id = None
        if trigger is Trigger.REMOTE and kind in _REMOTE_TARGET:
            command = self._claim(kind)
            if command is not None and command.confirmed:
                return 0  # already reported when the read-back state confirmed it
            if command is not None:
                command.confirmed = True
                request_id = command.request_id
        code_id = None
        if entry.access_code_id is not None:
            code_id = self._int_id(entry.access_code_id)
            self._save_state()
        details: dict[str, str | int | bool] = {"schlage_event": entry.event_code}
        self._emit(
            kind,
            trigger,
            f"log-{entry.log_id}",
            request_id=request_id,
            code_id=code_id,
            details=details,
            at=entry.created_at,
        )
        return 1

    def _claim(self, kind: EventKind) -> _Command | None:
        """The oldest command of ``kind`` whose log entry this is, if any; forget stale ones."""
        horizon = self._now() - COMMAND_LOG_WINDOW
        for request_id, command in list(self._commands.items()):
            if command.sent_at < horizon:
                del self._commands[request_id]
        for command in self._commands.values():
            if command.kind is kind and not command.logged:
                command.logged = True
                return command
        return None

    def _emit(
        self,
        kind: EventKind,
        trigger: Trigger,
        event_id: str,
        *,
        request_id: str | None = None,
        code_id: int | None = None,
        details: dict[str, str | int | bool] | None = None,
        at: datetime | None = None,
    ) -> None:
        self._events.put(
            LockEvent(
                lock_id=self._lock_id,
                kind=kind,
                at=at or self._now(),
                vendor=VENDOR,
                vendor_event_id=f"{VENDOR}-{event_id}",
                trigger=trigger,
                keypad_code_id=code_id,
                request_id=request_id,
                details=details or {},
            )
        )

    def _int_id(self, schlage_id: str) -> int:
        if schlage_id not in self._code_ids:
            self._code_ids[schlage_id] = self._next_code
            self._next_code += 1
        return self._code_ids[schlage_id]

    def _save_state(self) -> None:
        state = {
            "codes": self._code_ids,
            "next_code": self._next_code,
            "log": self._cursor.to_json(),
        }
        self._store.save(self._lock_id, STATE_KIND, state)


def _status_of(device: Lock) -> LockStatus:
    if not device.connected or device.is_locked is None:
        state = LockState.UNREACHABLE
    elif device.is_jammed:
        state = LockState.JAMMED
    else:
        state = LockState.LOCKED if device.is_locked else LockState.UNLOCKED
    door = {1: DoorState.OPEN, 2: DoorState.CLOSED}.get(
        int(device.door_state or 0), DoorState.UNKNOWN
    )
    return LockStatus(state, device.battery_level, door)


def _check_code(code: KeypadCode) -> None:
    if not (code.code.isascii() and code.code.isdigit()):
        raise LockRefusedError("a Schlage keypad code must be digits only")
    if not MIN_CODE_DIGITS <= len(code.code) <= MAX_CODE_DIGITS:
        raise LockRefusedError(
            f"a Schlage keypad code needs {MIN_CODE_DIGITS}-{MAX_CODE_DIGITS} digits"
        )
    if code.valid_from.tzinfo is None or code.valid_from >= code.valid_until:
        raise LockRefusedError("a keypad code needs an aware start before its end")


def _earlier_attempt(existing: list[AccessCode], code: KeypadCode) -> str | None:
    """The id of a code identical to ``code`` in digits, name and schedule, if one is there."""
    wanted = TemporarySchedule(code.valid_from, code.valid_until).to_json()
    typed = code.code.encode()
    for other in existing:
        schedule = other.schedule
        if (
            hmac.compare_digest(typed, other.code.encode())
            and other.name == code.name
            and isinstance(schedule, TemporarySchedule)
            and schedule.to_json() == wanted
        ):
            return other.access_code_id
    return None


def _check_room(device: Lock, code: KeypadCode, existing: list[AccessCode]) -> None:
    """Refuse before asking the cloud: Schlage's own answers to these are not documented."""
    if device.access_code_length and len(code.code) != device.access_code_length:
        raise LockRefusedError(f"this Schlage lock takes {device.access_code_length}-digit codes")
    typed = code.code.encode()
    if any([hmac.compare_digest(typed, other.code.encode()) for other in existing]):  # noqa: C419 - compare all, no early exit
        raise DuplicateCodeError("the Schlage keypad already holds this code")
    if device.max_user_codes is not None and len(existing) >= device.max_user_codes:
        raise KeypadFullError(f"all {device.max_user_codes} Schlage access codes are used")


def read_password_file(path: Path, source: str, lock_id: str) -> str:
    """The password in ``path`` (one line); ConfigError if missing or readable by others."""
    where = f"{source}: locks[{lock_id}].options.password_file"
    try:
        with path.open("rb") as file:
            mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
            text = file.read().decode().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [f"{where}: cannot read {path}: {exc}"]) from None
    if mode & _EXPOSING_BITS:
        raise ConfigError(source, [f"{where}: {path} has mode {mode:04o}; chmod 600 it"])
    if not text:
        raise ConfigError(source, [f"{where}: {path} is empty"])
    return text


def build(section: LockSection, context: DriverContext) -> SchlageLock:
    """The driver for a ``schlage`` lock section."""
    options = parse_options(SchlageOptions, section, context.source)
    store = context.credentials()
    saved = store.load(section.id, CREDENTIAL_KIND) or {}
    if options.password_file is not None and options.username is not None:
        username = options.username
        password = read_password_file(options.password_file, context.source, section.id)
    elif saved.get("username") and saved.get("password"):
        username, password = str(saved["username"]), str(saved["password"])
    else:
        what = f"no credentials: set username and password_file, or {_REPAIR}"
        raise ConfigError(
            context.source,
            [f"{context.source}: locks[{section.id}]: {what.format(lock_id=section.id)}"],
        )
    device_id = options.device_id or (None if options.name else saved.get("device_id"))
    if device_id is None and options.name is None:
        what = "set device_id or name (or pair the lock, which records the device)"
        raise ConfigError(
            context.source, [f"{context.source}: locks[{section.id}].options: {what}"]
        )
    endpoints = Endpoints(options.api_base, options.cognito_endpoint, options.read_timeout)
    return SchlageLock(
        section.id,
        account=account(username, password, endpoints),
        device_id=device_id,
        device_name=options.name,
        store=store,
        now=context.now,
        sleep=context.sleep,
    )


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
