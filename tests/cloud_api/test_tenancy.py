"""Bearer keys: 401 without a valid one; a key serves only its tenant, others see 404."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from .conftest import WINDOWS, Cloud

CHALLENGE = 'Bearer realm="lockhub"'


async def test_another_tenant_can_neither_see_nor_touch_a_window(cloud: Cloud) -> None:
    made = await (await cloud.create()).json()
    window = f"{WINDOWS}/{made['window_id']}"
    cloud.published.clear()
    # Through its own paths: the window is simply not there.
    mine = f"/v1/other/locks/access-windows/{made['window_id']}"
    assert await cloud.call("GET", mine, "other") == (404, {"error": "not_found"})
    assert await cloud.call("DELETE", mine, "other") == (404, {"error": "not_found"})
    assert await cloud.call("GET", "/v1/other/tasks/task-1", "other") == (
        404, {"error": "not_found"},
    )  # fmt: skip
    assert await cloud.call("GET", "/v1/other/locks/access-windows", "other") == (
        200, {"windows": []},
    )  # fmt: skip
    # Through acme's paths: the same 404 as for a path that does not exist.
    for method, path in [
        ("GET", window),
        ("DELETE", window),
        ("GET", WINDOWS),
        ("POST", WINDOWS),
        ("GET", "/v1/acme/tasks/task-1"),
        ("POST", "/v1/acme/tasks/task-1/complete"),
        ("GET", "/v1/nobody/tasks/task-1"),
    ]:
        assert await cloud.call(method, path, "other") == (404, {"error": "not_found"}), path
    assert cloud.published == []
    status, shown = await cloud.call("GET", window)
    assert (status, shown["desired"]) == (200, "active")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic YWNtZTpzZWNyZXQ=",
        "bearer lhk_x_y",
        "Bearer lhk_000000000000_wrong",
        "Bearer not-a-key",
        "Bearer lhk_a_b c",
    ],
)
async def test_no_valid_key_is_401_with_a_challenge(cloud: Cloud, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path in [("GET", WINDOWS), ("POST", WINDOWS), ("GET", "/v1/acme/tasks/t")]:
        response = await cloud.client.request(method, path, headers=headers)
        assert response.status == 401
        assert await response.json() == {"error": "unauthorized"}
        assert response.headers["WWW-Authenticate"] == CHALLENGE


async def test_a_key_with_a_valid_prefix_and_a_wrong_secret_is_401(cloud: Cloud) -> None:
    prefix = "_".join(cloud.keys["acme"].split("_")[:2])
    response = await cloud.client.get(WINDOWS, headers={"Authorization": f"Bearer {prefix}_x"})
    assert response.status == 401


async def test_a_revoked_key_is_401(cloud: Cloud) -> None:
    assert await cloud.call("GET", WINDOWS) == (200, {"windows": []})
    assert await cloud.service.revoke_api_key(cloud.keys["acme"].split("_")[1])
    response = await cloud.client.get(WINDOWS, headers=cloud.auth("acme"))
    assert response.status == 401


async def test_public_routes_need_no_key(cloud: Cloud) -> None:
    for path in ("/healthz", "/readyz", "/v1/openapi.json"):
        assert (await cloud.client.get(path)).status == 200, path


async def test_neither_keys_nor_codes_reach_the_log(cloud: Cloud) -> None:
    with capture_logs() as events:
        made = await (await cloud.create()).json()
        await cloud.call("GET", WINDOWS, "other")
        await cloud.client.get(WINDOWS, headers={"Authorization": "Bearer lhk_0_guess"})
    assert events  # the service logs the window it made
    logged = repr(events)
    for secret in (made["code"], cloud.keys["acme"], cloud.keys["other"], "lhk_0_guess"):
        assert secret not in logged


async def test_a_tenant_cannot_open_doors_at_a_hub_it_is_not_granted(cloud: Cloud) -> None:
    other = await cloud.create("other")
    unknown = await cloud.create("other", hub_id="hub-nowhere")
    # The same answer as for a hub that does not exist: no probing of other tenants' hubs.
    assert (other.status, await other.json()) == (unknown.status, await unknown.json())
    assert other.status == 400
    assert (await other.json())["field"] == "hub_id"
    assert cloud.published == []
    assert (await cloud.create("acme")).status == 201
