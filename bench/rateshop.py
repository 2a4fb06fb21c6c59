"""Rate-shop latency: 5 carriers answering in 200 ms each, beside 1 carrier (the baseline).

Every carrier is a real Uber Direct connector (OAuth token, HTTP quote) against its own fake
Uber Direct server that holds each quote answer for QUOTE_DELAY_S; the rate shop asks every
partner at once, so 5 carriers should cost about what 1 does (ratio near 1), not 5 times.
The figure is the median of SHOPS shops after one warm-up shop (tokens fetched, pools open).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

import cloud_sync.carriers.uber_direct  # noqa: F401 - registers "uber_direct"
from cloud_sync.carriers.connector import Address, Parcel, QuoteRequest
from cloud_sync.carriers.credentials import KeyRing, generate_key
from cloud_sync.carriers.fakes.uber import Account, FakeUberDirect
from cloud_sync.carriers.service import Carriers, carrier_store
from cloud_sync.carriers.settings import CarriersSection
from cloud_sync.store import CloudStore, migrate

from .harness import Context, Row, scenario

# What the issue names: carriers that take 200 ms to quote.
QUOTE_DELAY_S = 0.2
CARRIERS = 5
# Shops measured per variant (each ~0.2 s): enough for a stable median, a few seconds in all.
SHOPS = 15
QUICK_SHOPS = 2
TENANT = "bench"
PLACE = Address("Hub", "+4930000000", "Invalidenstr. 1", "Berlin", "10115", "DE")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def slow_quotes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Hold every quote answer for QUOTE_DELAY_S, as a carrier under load would."""
    if request.path.endswith("/delivery_quotes"):
        await asyncio.sleep(QUOTE_DELAY_S)
    return await handler(request)


def quote_request(number: int) -> QuoteRequest:
    parcel = Parcel(1200, 30, 20, 10)
    ready = datetime.now(UTC)
    return QuoteRequest(f"task-{number}", TENANT, PLACE, PLACE, (parcel,), ready)


async def shop_latency(context: Context, carriers: int) -> float:
    """Median milliseconds of a rate shop over ``carriers`` slow Uber Direct partners."""
    url = f"sqlite+aiosqlite:///{context.workdir}/rateshop-{carriers}.db"
    await migrate(url)
    fakes = []
    for number in range(carriers):
        account = Account(f"cust-{number}", f"client-{number}", f"secret-{number}")
        fake = FakeUberDirect(account)
        fake.app.middlewares.append(slow_quotes)
        await fake.start()
        fakes.append(fake)
    async with await CloudStore.open(url) as store, aiohttp.ClientSession() as session:
        ring = KeyRing.parse(f"k1:{generate_key()}", "k1")
        desk = Carriers.build(carrier_store(store), CarriersSection(), ring=ring, session=session)
        for fake in fakes:
            account = fake.account
            await desk.registry.create(
                TENANT,
                "uber_direct",
                f"uber {account.customer_id}",
                credentials={
                    "customer_id": account.customer_id,
                    "client_id": account.client_id,
                    "client_secret": account.client_secret,
                },
                settings={"api_base": fake.url, "token_url": f"{fake.url}/oauth/v2/token"},
            )
        await desk.shop.shop(quote_request(0))  # warm-up: tokens, connection pools
        times = []
        for number in range(1, context.size("SHOPS", SHOPS, QUICK_SHOPS) + 1):
            started = time.perf_counter()
            result = await desk.shop.shop(quote_request(number))
            times.append((time.perf_counter() - started) * 1000)
            if len(result.offers) != carriers or result.skipped:
                raise RuntimeError(f"a rate shop lost carriers: {result.skipped}")
    for fake in fakes:
        await fake.close()
    return statistics.median(times)


@scenario("rateshop")
def rateshop(context: Context) -> Iterator[Row]:
    """5 carriers of 200 ms each beside 1 (ratio near 1: concurrent, not the sum)."""
    one = asyncio.run(shop_latency(context, 1))
    five = asyncio.run(shop_latency(context, CARRIERS))
    yield Row(f"rate shop, {CARRIERS} carriers x 200 ms (vs 1), p50", five, one, "ms", 1)
