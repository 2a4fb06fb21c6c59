"""One Schlage account's pyschlage session, run in worker threads, its errors translated.

Every pyschlage call runs in a worker thread and holds its account's ``threading.Lock`` there,
so calls on one account stay serialised even when the coordinator gives up waiting on one (a
cancelled ``to_thread`` leaves its thread running). Foreign errors are translated in
``SchlageAccount.call`` and nowhere else.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass
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
from pyschlage import Auth, Schlage
from pyschlage.auth import CLIENT_ID, CLIENT_SECRET, USER_POOL_ID, USER_POOL_REGION
from pyschlage.exceptions import Error as PySchlageError
from pyschlage.exceptions import NotAuthorizedError, UnknownError

from ...driver import DuplicateCodeError, KeypadFullError, LockError, LockRefusedError
from .errors import SchlageAuthError, SchlageUnreachableError

T = TypeVar("T")
log = structlog.get_logger(__name__)

# One cloud round trip (connect, read). Below the coordinator's 8 s status timeout, so a worker
# thread the coordinator stopped waiting for ends soon and frees the account for the retry.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 6.0
# Cognito (SRP login, token refresh) gets the same budget; botocore's own retries are off
# because the coordinator retries, and retries stacked on retries would outlast its timeouts.
NO_BOTOCORE_RETRIES = {"total_max_attempts": 1}
# Past the coordinator's 15 s unlock timeout a longer wait only keeps a dead thread busy.
MAX_READ_TIMEOUT = 15.0
DEFAULT_API_BASE = "https://api.allegion.yonomi.cloud/v1"


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
