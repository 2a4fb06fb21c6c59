"""Each connector behind retries, a breaker, a time limit and a failure audit.

Retries (tenacity) only on TransientCarrierError: 5xx, timeouts, connection failures and 429.
A Retry-After is waited out as given, unless it is longer than MAX_HONOURED_RETRY_AFTER_S, in
which case the call gives up at once rather than hold a caller that long. Rejections (4xx) and
auth errors are never retried. Every failed attempt is written to ``carrier_callbacks``.
``create_job`` passes the same idempotency key on every attempt, so a retried booking whose
first answer was lost books once.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TypeVar

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)
from tenacity.stop import stop_base

from cloud_sync.store.carriers import CallbackRow

from .breaker import BreakerBoard, BreakerSnapshot, CircuitBreaker
from .connector import (
    CarrierJob,
    CarrierJobRef,
    Connector,
    JobRequest,
    JobStatus,
    Label,
    Manifest,
    Quote,
    QuoteRequest,
)
from .errors import (
    CarrierAuthError,
    CarrierError,
    CarrierTimeoutError,
    TransientCarrierError,
)

__all__ = [
    "BreakerBoard",
    "BreakerSnapshot",
    "CircuitBreaker",
    "Policy",
    "ResilientConnector",
    "carrier_idempotency_key",
]

log = structlog.get_logger(__name__)
T = TypeVar("T")
Audit = Callable[[CallbackRow], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]

# Waiting longer than this inside one call holds an API caller too long; give up instead and
# let the breaker and the next rate shop deal with the carrier.
MAX_HONOURED_RETRY_AFTER_S = 30.0
# Backoff without a Retry-After: 0.2 s, 0.4 s, 0.8 s... with full jitter, at most 5 s.
BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 5.0
# Carriers cap idempotency keys (Uber Direct: 64 characters); 32 hex characters fit all.
CARRIER_KEY_CHARS = 32


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Policy:
    """Retry and time limits of one connector."""

    attempts: int = 3
    quote_timeout_s: float = 5.0
    call_timeout_s: float = 15.0


def carrier_idempotency_key(tenant: str, key: str) -> str:
    """The key sent to the carrier for our (tenant, key): stable, opaque, short."""
    digest = hashlib.sha256(f"{tenant}\x00{key}".encode()).hexdigest()
    return digest[:CARRIER_KEY_CHARS]


def _wait(state: RetryCallState) -> float:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    if isinstance(error, TransientCarrierError) and error.retry_after is not None:
        return error.retry_after
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (state.attempt_number - 1))
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret


class _RetryAfterTooLong(stop_base):
    """Stop when the carrier asks us to wait longer than we will hold a caller."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        return (
            isinstance(error, TransientCarrierError)
            and error.retry_after is not None
            and error.retry_after > MAX_HONOURED_RETRY_AFTER_S
        )


class ResilientConnector:
    """A Connector wrapping another one with retries, a breaker, time limits and an audit."""

    def __init__(
        self,
        inner: Connector,
        breaker: CircuitBreaker,
        *,
        audit: Audit,
        tenant: str | None = None,
        partner_id: str | None = None,
        policy: Policy | None = None,
        sleep: Sleep = asyncio.sleep,
        now: Callable[[], datetime] = _now,
    ) -> None:
        self.inner = inner
        self.provider_code = inner.provider_code
        self.breaker = breaker
        self.policy = policy or Policy()
        self._audit = audit
        self._tenant, self._partner_id = tenant, partner_id
        self._sleep, self._now = sleep, now

    async def quote(self, request: QuoteRequest) -> list[Quote]:
        """Quotes, within the quote time limit."""
        timeout = self.policy.quote_timeout_s
        return await self._call("quote", lambda: self.inner.quote(request), timeout)

    async def create_job(self, request: JobRequest, *, idempotency_key: str) -> CarrierJob:
        """Book; every attempt carries the same idempotency key."""

        def book() -> Awaitable[CarrierJob]:
            return self.inner.create_job(request, idempotency_key=idempotency_key)

        return await self._call("create_job", book, self.policy.call_timeout_s)

    async def get_status(self, job: CarrierJobRef) -> JobStatus:
        """The job's status."""
        return await self._call(
            "get_status", lambda: self.inner.get_status(job), self.policy.call_timeout_s
        )

    async def cancel_job(self, job: CarrierJobRef) -> None:
        """Cancel the job."""
        await self._call(
            "cancel_job", lambda: self.inner.cancel_job(job), self.policy.call_timeout_s
        )

    async def get_label(self, job: CarrierJobRef) -> Label | None:
        """The carrier's label, if it has one."""
        return await self._call(
            "get_label", lambda: self.inner.get_label(job), self.policy.call_timeout_s
        )

    async def get_manifest(self, day: date) -> Manifest | None:
        """The carrier's manifest, if it has one."""
        return await self._call(
            "get_manifest", lambda: self.inner.get_manifest(day), self.policy.call_timeout_s
        )

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]], limit_s: float) -> T:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.policy.attempts) | _RetryAfterTooLong(),
            wait=_wait,
            retry=retry_if_exception(self._retryable),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async with asyncio.timeout(limit_s):
                async for attempt in retrying:
                    with attempt:
                        number = attempt.retry_state.attempt_number
                        return await self._attempt(operation, call, number)
        except TimeoutError:
            self.breaker.failure()
            error = CarrierTimeoutError(
                f"{self.provider_code} did not answer {operation} within {limit_s:g} s",
                provider_code=self.provider_code,
            )
            await self._record(operation, error, None)
            raise error from None
        raise AssertionError("unreachable")  # pragma: no cover - tenacity returns or raises

    def _retryable(self, error: BaseException) -> bool:
        # Once the breaker has opened, another attempt would only fail fast: keep the real error.
        return isinstance(error, TransientCarrierError) and self.breaker.state != "open"

    async def _attempt(self, operation: str, call: Callable[[], Awaitable[T]], number: int) -> T:
        self.breaker.acquire()
        try:
            result = await call()
        except CarrierError as error:
            self._judge(error)
            await self._record(operation, error, number)
            raise
        except asyncio.CancelledError:
            self.breaker.release()
            raise
        except Exception as error:
            # A connector bug must not take the rate shop down with it; it counts as a failure.
            log.exception("carrier.connector_bug", provider=self.provider_code, op=operation)
            wrapped = CarrierError(
                f"{self.provider_code} connector failed: {type(error).__name__}",
                provider_code=self.provider_code,
            )
            self.breaker.failure()
            await self._record(operation, wrapped, number)
            raise wrapped from error
        self.breaker.success()
        return result

    def _judge(self, error: CarrierError) -> None:
        # A rejection is an answer: the carrier is up. Transient and auth failures count.
        if isinstance(error, TransientCarrierError | CarrierAuthError):
            self.breaker.failure()
        else:
            self.breaker.success()

    async def _record(self, operation: str, error: CarrierError, attempt: int | None) -> None:
        status = getattr(error, "status", None)
        row = CallbackRow(
            self._tenant, self._partner_id, self.provider_code, operation, error.kind,
            status if isinstance(status, int) else None, attempt, str(error)[:512], None,
            self._now(),
        )  # fmt: skip
        log.warning(
            "carrier.call_failed", provider=self.provider_code, partner_id=self._partner_id,
            operation=operation, kind=error.kind, attempt=attempt, status=row.status_code,
        )  # fmt: skip
        try:
            await self._audit(row)
        except Exception:
            # The audit must never turn a carrier answer into a different failure.
            log.exception("carrier.audit_failed", provider=self.provider_code)
