"""OAuth2 client credentials against a real token endpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from cloud_sync.carriers.errors import CarrierAuthError, CarrierError, TransientCarrierError
from cloud_sync.carriers.oauth import REFRESH_MARGIN_S, ClientCredentialsToken

SECRET = "cs_top-secret-999"  # noqa: S105 - a fake secret to hunt for in logs


@dataclass
class Issuer:
    """An OAuth token endpoint: answers queued, else a new token that lives ``expires_in``."""

    forms: list[dict[str, str]] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)
    queue: list[tuple[int, Any]] = field(default_factory=list)
    expires_in: Any = 3600
    issued: int = 0

    async def token(self, request: web.Request) -> web.Response:
        self.forms.append(dict(await request.post()))  # type: ignore[arg-type]
        self.auth.append(request.headers.get("Authorization"))
        await asyncio.sleep(0.05)  # concurrent callers overlap here
        if self.queue:
            status, body = self.queue.pop(0)
            return web.json_response(body, status=status)
        self.issued += 1
        body = {"access_token": f"tok-{self.issued}", "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return web.json_response(body)


class Ticks:
    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value


@pytest.fixture
async def issuer() -> AsyncIterator[tuple[Issuer, str]]:
    made = Issuer()
    app = web.Application()
    app.router.add_post("/oauth/v2/token", made.token)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield made, f"http://127.0.0.1:{runner.addresses[0][1]}/oauth/v2/token"
    finally:
        await runner.cleanup()


def client(
    session: aiohttp.ClientSession, url: str, ticks: Ticks, **kw: Any
) -> ClientCredentialsToken:
    return ClientCredentialsToken(
        session, url, "client-1", SECRET, "test", scope="eats.deliveries", clock=ticks, **kw
    )


async def test_fetch_cache_and_refresh_before_expiry(
    issuer: tuple[Issuer, str], session: aiohttp.ClientSession
) -> None:
    server, url = issuer
    ticks = Ticks()
    tokens = client(session, url, ticks)
    with structlog.testing.capture_logs() as logs:
        first = await asyncio.gather(*(tokens.token() for _ in range(5)))
    assert first == ["tok-1"] * 5
    assert server.issued == 1
    assert server.forms[0] == {
        "grant_type": "client_credentials", "client_id": "client-1",
        "client_secret": SECRET, "scope": "eats.deliveries",
    }  # fmt: skip
    ticks.value = 3600 - REFRESH_MARGIN_S - 1
    assert await tokens.token() == "tok-1"
    ticks.value = 3600 - REFRESH_MARGIN_S
    assert await tokens.header() == {"Authorization": "Bearer tok-2"}
    tokens.invalidate()
    assert await tokens.token() == "tok-3"
    assert SECRET not in str(logs)
    assert "tok-1" not in str(logs)
    assert SECRET not in repr(tokens)


async def test_basic_auth_audience_and_default_lifetime(
    issuer: tuple[Issuer, str], session: aiohttp.ClientSession
) -> None:
    server, url = issuer
    server.expires_in = None
    ticks = Ticks()
    tokens = client(session, url, ticks, auth_style="basic", audience="https://api.example")
    assert await tokens.token() == "tok-1"
    assert "client_secret" not in server.forms[0]
    assert server.forms[0]["audience"] == "https://api.example"
    assert (server.auth[0] or "").startswith("Basic ")
    ticks.value = 3000.0
    assert await tokens.token() == "tok-1"  # an hour assumed


@pytest.mark.parametrize(
    ("status", "body", "error", "match"),
    [
        (401, {"error": "invalid_client"}, CarrierAuthError, "invalid_client"),
        (400, {"error": "unauthorized_client"}, CarrierAuthError, "refused"),
        (503, {}, TransientCarrierError, "503"),
        (429, {}, TransientCarrierError, "429"),
        (200, {"token_type": "Bearer"}, CarrierError, "no access_token"),
        (200, ["not", "an", "object"], CarrierError, "no access_token"),
    ],
)
async def test_failures_map_to_our_errors(  # noqa: PLR0917 - fixtures plus parameters
    issuer: tuple[Issuer, str], session: aiohttp.ClientSession,
    status: int, body: Any, error: type[Exception], match: str,
) -> None:  # fmt: skip
    server, url = issuer
    server.queue.append((status, body))
    with pytest.raises(error, match=match) as caught:
        await client(session, url, Ticks()).token()
    assert SECRET not in str(caught.value)


async def test_an_unreachable_issuer_is_transient(session: aiohttp.ClientSession) -> None:
    tokens = client(session, "http://127.0.0.1:9/token", Ticks())
    with pytest.raises(TransientCarrierError, match="ClientConnectorError"):
        await tokens.token()


async def test_a_non_numeric_lifetime_falls_back(
    issuer: tuple[Issuer, str], session: aiohttp.ClientSession
) -> None:
    server, url = issuer
    server.expires_in = "soon"
    ticks = Ticks()
    tokens = client(session, url, ticks)
    assert await tokens.token() == "tok-1"
    ticks.value = 3000.0
    assert await tokens.token() == "tok-1"
