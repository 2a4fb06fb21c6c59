"""Uber Direct, native: quote, book the quote, follow, cancel (aiohttp, OAuth2 client credentials).

Requests and answers are built and read by ``uber_codec``; this module moves them and turns
HTTP failures into our errors at the boundary: 429 (with Retry-After) and 5xx are transient,
401/403 an auth error (after one token refresh), other 4xx a rejection. Retries, breaker and
time limits are the job of ``resilience.ResilientConnector`` around this connector.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import aiohttp
import structlog

from . import uber_codec as codec
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
    for_status,
)
from .oauth import ClientCredentialsToken
from .registry import PartnerConfig, ProviderContext, register_provider
from .uber_codec import PROVIDER_CODE, DropoffVerification

log = structlog.get_logger(__name__)

API_BASE = "https://api.uber.com"
TOKEN_URL = "https://auth.uber.com/oauth/v2/token"  # noqa: S105 - a URL, not a secret
# Uber Direct's documented scope for the delivery endpoints.
SCOPE = "eats.deliveries"
# A socket-level ceiling only: the resilience layer sets the real per-call limits; this one
# keeps a connection that never answers from holding a pool slot for ever.
HTTP_TIMEOUT_S = 60.0
_UNAUTHORIZED = 401
CREDENTIALS = ("customer_id", "client_id", "client_secret")


class TokenSource(Protocol):
    """Bearer tokens for the API; ``invalidate`` after a 401 so the next one is fresh."""

    async def token(self) -> str: ...

    def invalidate(self) -> None: ...


@dataclass(frozen=True, slots=True)
class UberDirectConfig:
    """One Uber Direct account (``customer_id``) and where its API lives."""

    customer_id: str
    client_id: str
    client_secret: str = field(repr=False)
    api_base: str = API_BASE
    token_url: str = TOKEN_URL
    scope: str = SCOPE
    dropoff: DropoffVerification = field(default_factory=DropoffVerification)

    @classmethod
    def from_partner(
        cls, credentials: Mapping[str, str], settings: Mapping[str, Any]
    ) -> UberDirectConfig:
        """From a partner's opened credentials and its settings (docs/carriers/connectors.md)."""
        missing = [name for name in CREDENTIALS if not credentials.get(name)]
        if missing:
            raise CarrierAuthError(
                f"uber_direct credentials lack {', '.join(missing)}", provider_code=PROVIDER_CODE
            )
        dropoff = DropoffVerification(
            pincode=_flag(settings, "dropoff_pincode", default=False),
            signature=_flag(settings, "dropoff_signature", default=False),
            collect_signer_name=_flag(settings, "collect_signer_name", default=True),
            picture=_flag(settings, "dropoff_picture", default=False),
        )
        return cls(
            customer_id=credentials["customer_id"],
            client_id=credentials["client_id"],
            client_secret=credentials["client_secret"],
            api_base=_text(settings, "api_base", API_BASE).rstrip("/"),
            token_url=_text(settings, "token_url", TOKEN_URL),
            scope=_text(settings, "scope", SCOPE),
            dropoff=dropoff,
        )


def _flag(settings: Mapping[str, Any], name: str, *, default: bool) -> bool:
    value = settings.get(name, default)
    if not isinstance(value, bool):
        raise CarrierError(f"uber_direct setting {name} must be true or false")
    return value


def _text(settings: Mapping[str, Any], name: str, default: str) -> str:
    value = settings.get(name, default)
    if not isinstance(value, str) or not value:
        raise CarrierError(f"uber_direct setting {name} must be a non-empty string")
    return value


class UberDirectConnector:
    """The ``uber_direct`` Connector."""

    provider_code = PROVIDER_CODE

    def __init__(
        self,
        config: UberDirectConfig,
        *,
        session: aiohttp.ClientSession | None = None,
        tokens: TokenSource | None = None,
    ) -> None:
        self._config = config
        self._session = session
        self._owns_session = session is None
        self._tokens = tokens

    def _token_source(self) -> TokenSource:
        if self._tokens is None:
            self._tokens = ClientCredentialsToken(
                session=self._http(),
                token_url=self._config.token_url,
                client_id=self._config.client_id,
                client_secret=self._config.client_secret,
                provider_code=PROVIDER_CODE,
                scope=self._config.scope,
            )
        return self._tokens

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
            )
        return self._session

    async def aclose(self) -> None:
        """Close the HTTP session if this connector opened it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _url(self, path: str) -> str:
        return f"{self._config.api_base}/v1/customers/{self._config.customer_id}{path}"

    async def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        """One API call, refreshing the token once on a 401; the JSON answer or our error."""
        for attempt in (1, 2):
            status, headers, payload = await self._send(method, path, body)
            if status == _UNAUTHORIZED and attempt == 1:
                log.info("uber_direct.token_refused", path=path)
                self._token_source().invalidate()
                continue
            error = for_status(
                status, headers, provider_code=PROVIDER_CODE, detail=codec.read_error(payload)
            )
            if error is not None:
                log.warning("uber_direct.failed", path=path, status=status, kind=error.kind)
                raise error
            try:
                return json.loads(payload)
            except ValueError as exc:
                raise codec.UnreadableAnswerError(
                    "uber_direct answered with a body that is not JSON",
                    provider_code=PROVIDER_CODE,
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns/raises

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, str], bytes]:
        token = await self._token_source().token()
        try:
            async with self._http().request(
                method,
                self._url(path),
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                return response.status, dict(response.headers), await response.read()
        except TimeoutError as exc:
            raise CarrierTimeoutError(
                "uber_direct did not answer in time", provider_code=PROVIDER_CODE
            ) from exc
        except aiohttp.ClientError as exc:
            raise TransientCarrierError(
                f"uber_direct unreachable: {type(exc).__name__}", provider_code=PROVIDER_CODE
            ) from exc

    async def quote(self, request: QuoteRequest) -> list[Quote]:
        """One quote: Uber Direct sells a single on-demand service."""
        data = await self._call("POST", "/delivery_quotes", codec.quote_body(request))
        return [codec.read_quote(_object(data))]

    async def create_job(self, request: JobRequest, *, idempotency_key: str) -> CarrierJob:
        """Book the quote by its id; Uber answers a repeated key with the first delivery."""
        if request.quote.carrier_quote_id is None:
            raise CarrierError(
                "an uber_direct booking needs the quote id", provider_code=PROVIDER_CODE
            )
        body = codec.delivery_body(
            request, idempotency_key=idempotency_key, verification=self._config.dropoff
        )
        data = await self._call("POST", "/deliveries", body)
        job = codec.read_job(_object(data))
        log.info("uber_direct.booked", delivery_id=job.carrier_job_id, task_id=request.task_id)
        return job

    async def get_status(self, job: CarrierJobRef) -> JobStatus:
        """The delivery's status, cost (fee and tip) and dropoff proof."""
        data = await self._call("GET", f"/deliveries/{job.carrier_job_id}", None)
        return codec.read_status(_object(data))

    async def cancel_job(self, job: CarrierJobRef) -> None:
        """Cancel; Uber refuses (4xx, a rejection) once the courier has picked up."""
        await self._call("POST", f"/deliveries/{job.carrier_job_id}/cancel", None)
        log.info("uber_direct.cancelled", delivery_id=job.carrier_job_id)

    async def get_label(self, job: CarrierJobRef) -> Label | None:
        """None: couriers need no label, we print our own."""
        del job
        return None

    async def get_manifest(self, day: date) -> Manifest | None:
        """None: Uber Direct has no manifests."""
        del day
        return None


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise codec.UnreadableAnswerError(
            "uber_direct answered with a non-object", provider_code=PROVIDER_CODE
        )
    return data


def uber_direct_factory(partner: PartnerConfig, context: ProviderContext) -> Connector:
    """The registry's factory: credentials customer_id, client_id, client_secret."""
    config = UberDirectConfig.from_partner(partner.credentials, partner.settings)
    return UberDirectConnector(config, session=context.session)


register_provider(PROVIDER_CODE, uber_direct_factory)
