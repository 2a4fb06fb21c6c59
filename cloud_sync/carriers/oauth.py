"""OAuth 2.0 client credentials (RFC 6749 section 4.4) for connectors that need a token.

The token is cached and fetched again REFRESH_MARGIN before it expires, once for all callers
(concurrent callers wait on one fetch). A 401 from the carrier's API should ``invalidate()``
the cached token. The client secret and the token never appear in a log line or an error.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote_plus

import aiohttp
import structlog

from .errors import CarrierAuthError, CarrierError, TransientCarrierError, for_status

log = structlog.get_logger(__name__)

# Refresh this long before expiry: a request that starts just before expiry still lands with
# a valid token, and clock skew with the issuer stays harmless.
REFRESH_MARGIN_S = 60.0
# Issuers that omit expires_in: assume an hour (the common default) minus the margin.
DEFAULT_EXPIRES_IN_S = 3600.0
# A token endpoint answers in well under a second; 10 s covers a slow issuer.
TOKEN_TIMEOUT_S = 10.0


@dataclass
class ClientCredentialsToken:
    """Fetches, caches and refreshes one client's access token."""

    session: aiohttp.ClientSession
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    provider_code: str
    scope: str | None = None
    audience: str | None = None
    # "body": id and secret as form fields; "basic": HTTP Basic (RFC 6749 2.3.1 prefers it).
    auth_style: str = "body"
    clock: Callable[[], float] = time.monotonic
    _token: str | None = field(default=None, init=False, repr=False)
    _expires: float = field(default=0.0, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def token(self) -> str:
        """A valid access token (cached until REFRESH_MARGIN_S before it expires)."""
        if self._fresh():
            return self._token or ""
        async with self._lock:
            if not self._fresh():  # another caller may have fetched while we waited
                self._token, lifetime = await self._fetch()
                self._expires = self.clock() + lifetime
        return self._token or ""

    async def header(self) -> dict[str, str]:
        """The Authorization header."""
        return {"Authorization": f"Bearer {await self.token()}"}

    def invalidate(self) -> None:
        """Forget the token: the API refused it."""
        self._token, self._expires = None, 0.0

    def _fresh(self) -> bool:
        return self._token is not None and self.clock() < self._expires - REFRESH_MARGIN_S

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        headers: dict[str, str] = {}
        if self.auth_style == "basic":
            # RFC 6749 2.3.1: form-encode id and secret, then Basic.
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form |= {"client_id": self.client_id, "client_secret": self.client_secret}
        if self.scope:
            form["scope"] = self.scope
        if self.audience:
            form["audience"] = self.audience
        timeout = aiohttp.ClientTimeout(total=TOKEN_TIMEOUT_S)
        try:
            async with self.session.post(
                self.token_url, data=form, headers=headers, timeout=timeout
            ) as response:
                body = await response.json(content_type=None) if response.status < 500 else None
                status, headers = response.status, dict(response.headers)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TransientCarrierError(
                f"{self.provider_code} token endpoint failed: {type(exc).__name__}",
                provider_code=self.provider_code,
            ) from None
        return self._parse(status, headers, body)

    def _parse(self, status: int, headers: dict[str, str], body: object) -> tuple[str, float]:
        failure = for_status(status, headers, provider_code=self.provider_code)
        if isinstance(failure, TransientCarrierError):
            raise failure
        if failure is not None:
            # RFC 6749 5.2: invalid_client, unauthorized_client... all mean bad credentials.
            error = body.get("error") if isinstance(body, dict) else None
            raise CarrierAuthError(
                f"{self.provider_code} refused the client credentials ({status}, {error})",
                provider_code=self.provider_code,
            )
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise CarrierError(
                f"{self.provider_code} token answer has no access_token",
                provider_code=self.provider_code,
            )
        expires_in = body.get("expires_in", DEFAULT_EXPIRES_IN_S)
        lifetime = (
            float(expires_in) if isinstance(expires_in, int | float) else DEFAULT_EXPIRES_IN_S
        )
        log.info("carrier.token_fetched", provider=self.provider_code, expires_in=lifetime)
        return body["access_token"], lifetime
