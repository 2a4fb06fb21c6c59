"""Admin endpoints refuse missing and wrong tokens, near misses included, in constant time.

tests/api/test_admin.py covers missing, wrong, short, scheme-less and Basic credentials; this
adds the near misses a careless comparison lets through (a prefix, a longer token, another
case, whitespace) and shows every decision is one ``hmac.compare_digest`` over the whole
header as received: no length check, prefix match or parsing before it that could answer
early. (A timing test of the guard itself proved unstable: building the 401 response costs
thousands of times what the comparison does, so the check is structural.) The cloud API's
tenant keys are refused the same way.
"""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.api import ApiParts, require_admin
from tests.access.harness import ADMIN_TOKEN, HubHarness, running_hub
from tests.cloud_api.conftest import WINDOWS, Cloud

ROUTES = [
    ("GET", "/v1/admin/windows"),
    ("GET", "/v1/admin/locks"),
    ("GET", "/v1/admin/outbox"),
    ("GET", "/v1/admin/lockouts"),
    ("POST", "/v1/admin/commands"),
]
# Not here: trailing whitespace, which HTTP strips from every header value before the hub
# sees it (RFC 9110 5.5), so "Bearer <token> " is the right token.
NEAR_MISSES = {
    "prefix": f"Bearer {ADMIN_TOKEN[:-1]}",
    "longer": f"Bearer {ADMIN_TOKEN}x",
    "last-char": f"Bearer {ADMIN_TOKEN[:-1]}{chr(ord(ADMIN_TOKEN[-1]) + 1)}",
    "upper-case": f"Bearer {ADMIN_TOKEN.upper()}",
    "lower-scheme": f"bearer {ADMIN_TOKEN}",
    "two-spaces": f"Bearer  {ADMIN_TOKEN}",
    "tab": f"Bearer\t{ADMIN_TOKEN}",
    "empty-bearer": "Bearer ",
    "twice": f"Bearer {ADMIN_TOKEN}, Bearer {ADMIN_TOKEN}",
}


async def status(hub: HubHarness, method: str, path: str, headers: dict[str, str]) -> int:
    async with hub.client.request(method, path, headers=headers, data=b"[]") as response:
        await response.read()
        return response.status


@pytest.mark.parametrize("header", list(NEAR_MISSES.values()), ids=list(NEAR_MISSES))
async def test_near_miss_tokens_are_refused_everywhere(tmp_path: Path, header: str) -> None:
    async with running_hub(tmp_path) as hub:
        for method, path in ROUTES:
            assert await status(hub, method, path, {"Authorization": header}) == 401, path
        # The right token opens them (the batch "[]" is malformed: 422, past the guard).
        right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert [await status(hub, m, path, right) for m, path in ROUTES] == [200] * 4 + [422]


async def test_every_decision_is_one_compare_digest_over_the_whole_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    async with running_hub(tmp_path) as hub:
        monkeypatch.setattr(hmac, "compare_digest", spy)
        for header in ["", *NEAR_MISSES.values(), f"Bearer {ADMIN_TOKEN}"]:
            calls.clear()
            await status(hub, "GET", "/v1/admin/locks", {"Authorization": header} if header else {})
            expected = f"Bearer {ADMIN_TOKEN}".encode()
            # As received: HTTP strips the value's surrounding whitespace, nothing else.
            assert calls == [(header.strip().encode(), expected)], header


async def test_no_token_file_means_no_admin_api() -> None:
    parts = ApiParts(
        engine=None,  # type: ignore[arg-type]  # the guard answers before any handler runs
        intake=None,  # type: ignore[arg-type]
        metrics=None,  # type: ignore[arg-type]
        admin_token=None,
        ready=dict,
    )

    async def handler(_: web.Request) -> web.StreamResponse:
        raise AssertionError("reached the handler without an admin token configured")

    guarded = require_admin(parts)(handler)
    for header in ("", f"Bearer {ADMIN_TOKEN}", "Bearer None", "Bearer "):
        request = make_mocked_request("GET", "/", headers={"Authorization": header})
        assert (await guarded(request)).status == 404


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer lhk_nope_nope",
        "Bearer ",
        "Basic x",
    ],
)
async def test_cloud_api_keys_missing_or_wrong_are_401(cloud: Cloud, header: str | None) -> None:
    right = cloud.keys["acme"]
    headers = {} if header is None else {"Authorization": header}
    for value in [header, f"Bearer {right[:-1]}", f"Bearer {right}x", f"bearer {right}"]:
        headers = {} if value is None else {"Authorization": value}
        async with cloud.client.get(WINDOWS, headers=headers) as response:
            assert response.status == 401, value
            assert response.headers["WWW-Authenticate"] == 'Bearer realm="lockhub"'
    # Another tenant's valid key is not this tenant's: 404, as if the tenant did not exist.
    async with cloud.client.get(WINDOWS, headers=cloud.auth("other")) as response:
        assert response.status == 404
    async with cloud.client.get(WINDOWS, headers=cloud.auth("acme")) as response:
        assert response.status == 200
