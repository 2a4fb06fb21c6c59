"""Per-API-key rate limits: a bucket per key, 429 with Retry-After, other keys unaffected."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud_sync.api import build_cloud_app
from cloud_sync.api.ratelimit import MAX_TRACKED_KEYS, KeyRateLimiter

from .conftest import Cloud


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_refills_at_its_rate() -> None:
    ticks = Ticks()
    limiter = KeyRateLimiter(2.0, 3, monotonic=ticks)
    assert [limiter.take("k") for _ in range(3)] == [None, None, None]
    assert limiter.take("k") == 1
    ticks.now = 0.5  # one token back at 2 per second
    assert limiter.take("k") is None
    assert limiter.take("k") == 1
    assert limiter.take("other") is None
    ticks.now = 100.0  # never more than the burst
    assert [limiter.take("k") for _ in range(4)] == [None, None, None, 1]


def test_slow_rates_say_how_long_to_wait() -> None:
    limiter = KeyRateLimiter(0.1, 1, monotonic=Ticks())
    assert limiter.take("k") is None
    assert limiter.take("k") == 10


def test_forgotten_keys_start_full_and_memory_is_bounded() -> None:
    limiter = KeyRateLimiter(1.0, 1, monotonic=Ticks())
    for n in range(MAX_TRACKED_KEYS + 5):
        assert limiter.take(f"k{n}") is None
    assert limiter.take("k0") is None  # evicted, so full again
    assert limiter.take(f"k{MAX_TRACKED_KEYS + 4}") == 1


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (1.0, 0)])
def test_nonsense_limits_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        KeyRateLimiter(rate, burst)


async def test_the_api_answers_429_with_retry_after_per_key(cloud: Cloud) -> None:
    ticks = Ticks()
    limiter = KeyRateLimiter(1.0, 2, monotonic=ticks)
    app = build_cloud_app(cloud.service, lambda _: None, ready=dict, limiter=limiter)
    async with TestClient(TestServer(app)) as client:

        async def get(tenant: str) -> Any:
            headers = {"Authorization": f"Bearer {cloud.keys[tenant]}"}
            return await client.get(f"/v1/{tenant}/locks/access-windows", headers=headers)

        assert [(await get("acme")).status for _ in range(2)] == [200, 200]
        limited = await get("acme")
        assert limited.status == 429
        assert limited.headers["Retry-After"] == "1"
        assert await limited.json() == {"error": "rate_limited", "retry_after": 1}
        assert (await get("other")).status == 200  # another key has its own bucket
        ticks.now = 1.0
        assert (await get("acme")).status == 200
        # Health and the spec are not tenant paths: never limited.
        assert all([(await client.get("/healthz")).status == 200 for _ in range(5)])
