"""Carrier errors, grouped by what the caller does: retry, re-authenticate, reject, wait.

Connectors translate foreign errors (HTTP statuses, aiohttp exceptions, SDK errors) into these
at their boundary; ``for_status`` and ``parse_retry_after`` do the HTTP part.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from cloud_sync.errors import CloudError, ConflictError

# A Retry-After further out than a day is a carrier's mistake, not advice we can act on.
MAX_RETRY_AFTER_S = 86_400.0
# Bodies quoted in errors and audit rows are cut here: enough to read the carrier's reason.
MAX_DETAIL = 512
_CLIENT_ERROR = 400
_TOO_MANY = 429
_SERVER_ERROR = 500


class CarrierError(CloudError):
    """Base of every carrier error; ``provider_code`` names the carrier when known."""

    def __init__(self, message: str, *, provider_code: str | None = None) -> None:
        super().__init__(message)
        self.provider_code = provider_code

    @property
    def kind(self) -> str:
        """A short machine word for audit rows and API answers."""
        return "error"


class TransientCarrierError(CarrierError):
    """5xx, timeout, connection failure: retrying later may succeed."""

    def __init__(
        self,
        message: str,
        *,
        provider_code: str | None = None,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, provider_code=provider_code)
        self.retry_after = retry_after
        self.status = status

    @property
    def kind(self) -> str:
        return "transient"


class CarrierTimeoutError(TransientCarrierError):
    """The carrier did not answer within our time limit."""

    @property
    def kind(self) -> str:
        return "timeout"


class RateLimitedError(TransientCarrierError):
    """429: wait ``retry_after`` seconds (when the carrier said) before calling again."""

    @property
    def kind(self) -> str:
        return "rate_limited"


class CarrierRejectedError(CarrierError):
    """4xx: the carrier refuses this request (bad address, no service); do not retry."""

    def __init__(
        self, message: str, *, provider_code: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message, provider_code=provider_code)
        self.status = status

    @property
    def kind(self) -> str:
        return "rejected"


class CarrierAuthError(CarrierError):
    """401/403 or a refused token: fix the partner's credentials."""

    @property
    def kind(self) -> str:
        return "auth"


class BreakerOpenError(CarrierError):
    """The connector's breaker is open: no call was made; try again after ``retry_at``."""

    def __init__(self, provider_code: str, retry_at: datetime | None) -> None:
        super().__init__(f"breaker open for {provider_code}", provider_code=provider_code)
        self.retry_at = retry_at

    @property
    def kind(self) -> str:
        return "breaker_open"


class CredentialError(CarrierError):
    """Sealed credentials do not open (unknown key id, tampered, other partner's)."""

    @property
    def kind(self) -> str:
        return "credentials"


class UnknownProviderError(CarrierError):
    """No connector factory is registered for this provider code."""

    @property
    def kind(self) -> str:
        return "unknown_provider"


class OfferUnavailableError(ConflictError):
    """The offer cannot be accepted (expired, or accepted already under another key): 409."""

    def __init__(self, offer_id: str, reason: str) -> None:
        super().__init__(f"offer {offer_id} is {reason}")
        self.offer_id = offer_id
        self.reason = reason


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent
    or unreadable; never negative, never more than MAX_RETRY_AFTER_S."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER_S)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = (moment - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_AFTER_S)


def for_status(
    status: int,
    headers: Mapping[str, str],
    *,
    provider_code: str,
    detail: str = "",
    now: datetime | None = None,
) -> CarrierError | None:
    """Our error for a carrier's HTTP answer; None for a success (1xx-3xx)."""
    message = f"{provider_code} answered {status}: {detail[:MAX_DETAIL]}".rstrip(": ")
    retry_after = parse_retry_after(headers.get("Retry-After"), now)
    if status == _TOO_MANY:
        return RateLimitedError(
            message, provider_code=provider_code, retry_after=retry_after, status=status
        )
    if status >= _SERVER_ERROR:
        return TransientCarrierError(
            message, provider_code=provider_code, retry_after=retry_after, status=status
        )
    if status in (401, 403):
        return CarrierAuthError(message, provider_code=provider_code)
    if status >= _CLIENT_ERROR:
        return CarrierRejectedError(message, provider_code=provider_code, status=status)
    return None
