"""Every error is JSON: validation naming the field, 404/405/413, 503 from the store, 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud_sync.api import MAX_BODY, build_cloud_app
from cloud_sync.api.http import response_for
from cloud_sync.errors import ConflictError
from cloud_sync.protocol.envelope import Signer
from cloud_sync.service import CloudService
from cloud_sync.store import CloudStore, utc_now
from cloud_sync.store.engine import Database, make_engine

from .conftest import WINDOWS, Cloud, window_request


async def post(cloud: Cloud, body: bytes) -> tuple[int, Any]:
    headers = {**cloud.auth("acme"), "Content-Type": "application/json"}
    response = await cloud.client.post(WINDOWS, data=body, headers=headers)
    return response.status, await response.json()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"task_id": None}, "task_id"),
        ({"task_id": ""}, "task_id"),
        ({"task_id": "x" * 129}, "task_id"),
        ({"hub_id": "hub 1"}, "hub_id"),
        ({"lock_id": 7}, "lock_id"),
        ({"starts_at": "2026-03-01 12:00:00Z"}, "starts_at"),
        ({"starts_at": "2026-03-01T12:00Z"}, "starts_at"),
        ({"starts_at": "2026-03-01T12:00:00"}, "starts_at"),
        ({"starts_at": "2026-02-30T12:00:00Z"}, "starts_at"),
        ({"starts_at": "9999-12-31T23:59:59-01:00"}, "starts_at"),
        ({"starts_at": 1772366400}, "starts_at"),
        ({"ends_at": "2026-03-01T12:00:00Z"}, "ends_at"),
        ({"ends_at": "2026-03-01T11:00:00.000Z", "starts_at": "2026-03-01T10:00:00Z"}, "ends_at"),
        ({"max_uses": 0}, "max_uses"),
        ({"max_uses": "1"}, "max_uses"),
        ({"max_uses": True}, "max_uses"),
        ({"max_uses": 1.0}, "max_uses"),
        ({"enforcement": "door"}, "enforcement"),
        ({"courier": {"id": "c-7"}}, "courier.name"),
        ({"courier": {"id": "c-7", "name": "Ada", "phone": "1"}}, "courier.phone"),
        ({"carrier_job_id": "job 9"}, "carrier_job_id"),
        ({"code": "12345678"}, "code"),
    ],
)
async def test_invalid_windows_are_400_naming_the_field(
    cloud: Cloud, changes: dict[str, Any], field: str
) -> None:
    status, answer = await post(cloud, json.dumps(window_request(**changes)).encode())
    assert (status, answer["error"], answer["field"]) == (400, "invalid_request", field), answer
    assert answer["detail"]
    assert cloud.published == []


async def test_a_missing_field_and_a_past_window(cloud: Cloud) -> None:
    body = window_request()
    del body["lock_id"]
    status, answer = await post(cloud, json.dumps(body).encode())
    assert (status, answer["field"], answer["detail"]) == (400, "lock_id", "Field required")
    past = window_request(starts_at="2026-03-01T10:00:00Z", ends_at="2026-03-01T11:00:00Z")
    status, answer = await post(cloud, json.dumps(past).encode())
    assert (status, answer["field"]) == (400, "ends_at")


async def test_an_unknown_hub_is_400_on_hub_id(cloud: Cloud) -> None:
    response = await cloud.create(hub_id="hub-9999")
    assert response.status == 400
    assert await response.json() == {
        "error": "invalid_request", "field": "hub_id", "detail": "no such hub",
    }  # fmt: skip
    assert cloud.published == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "body is not JSON"),
        (b"\xff\xfe", "body is not JSON"),
        (b"", "body is not JSON"),
        (b"[" * 40 + b"]" * 40, "body is not JSON"),
        (b'{"task_id": "a", "task_id": "b"}', "body is not JSON"),
        (b'{"task_id": "\\ud800"}', "body is not JSON"),
        (b'["task_id"]', "body must be a JSON object"),
    ],
)
async def test_malformed_bodies_are_400(cloud: Cloud, body: bytes, detail: str) -> None:
    assert await post(cloud, body) == (
        400, {"error": "invalid_request", "field": "body", "detail": detail},
    )  # fmt: skip


async def test_bodies_over_the_limit_are_413(cloud: Cloud) -> None:
    padding = {"task_id": "x", "pad": "y" * MAX_BODY}
    status, answer = await post(cloud, json.dumps(padding).encode())
    assert (status, answer) == (413, {"error": "request_entity_too_large"})

    async def chunks() -> Any:  # no Content-Length: the limit holds while reading
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    response = await cloud.client.post(WINDOWS, data=chunks(), headers=cloud.auth("acme"))
    assert (response.status, await response.json()) == (413, {"error": "request_entity_too_large"})


async def test_bad_query_parameters_are_400(cloud: Cloud) -> None:
    for params, field in [
        ({"task_id": "a b"}, "task_id"),
        ([("task_id", "a"), ("task_id", "b")], "task_id"),
        ({"hub": "x"}, "hub"),
    ]:
        status, answer = await cloud.call("GET", WINDOWS, params=params)
        assert (status, answer["field"]) == (400, field)


async def test_unknown_routes_and_methods_answer_json(cloud: Cloud) -> None:
    response = await cloud.client.get("/v1/nowhere")
    assert (response.status, await response.json()) == (404, {"error": "not_found"})
    response = await cloud.client.put(WINDOWS, headers=cloud.auth("acme"))
    assert (response.status, await response.json()) == (405, {"error": "method_not_allowed"})
    assert set(response.headers["Allow"].split(",")) == {"GET", "POST"}


async def test_readyz_follows_ready_and_a_failure_is_a_json_500(cloud: Cloud) -> None:
    response = await cloud.client.get("/readyz")
    assert await response.json() == {"ready": True, "checks": {"store": True, "mqtt": True}}
    cloud.ready["mqtt"] = False
    response = await cloud.client.get("/readyz")
    assert (response.status, (await response.json())["ready"]) == (503, False)

    def broken() -> dict[str, bool]:
        raise RuntimeError("boom")

    app = build_cloud_app(cloud.service, lambda _: None, ready=broken)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/readyz")
        assert (response.status, await response.json()) == (500, {"error": "internal_error"})


async def test_a_failed_publish_still_hands_out_the_code(cloud: Cloud) -> None:
    def refuse(_: object) -> None:
        raise OSError("broker queue gone")

    app = build_cloud_app(cloud.service, refuse, ready=dict)
    async with TestClient(TestServer(app)) as client:
        response = await client.post(WINDOWS, json=window_request(), headers=cloud.auth("acme"))
        assert response.status == 201
        assert len((await response.json())["code"]) == 8
    assert len(await cloud.service.list_windows("acme")) == 1


async def test_an_unreachable_store_is_503(cloud_signer: Signer) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    db = Database(make_engine("postgresql+asyncpg://lockhub@127.0.0.1:1/lockhub"))
    async with CloudStore(db, utc_now) as store:
        app = build_cloud_app(CloudService(store, cloud_signer), lambda _: None, ready=dict)
        async with TestClient(TestServer(app)) as client:
            headers = {"Authorization": "Bearer lhk_000000000000_secret"}
            response = await client.get(WINDOWS, headers=headers)
            assert (response.status, await response.json()) == (503, {"error": "unavailable"})
            assert response.headers["Retry-After"] == "5"


def test_a_conflict_is_409() -> None:
    # No route can provoke one yet (only re-adding a hub with other keys does): map it anyway.
    answer = response_for(ConflictError("hub 'h' is registered with other keys"))
    assert answer is not None
    assert answer.status == 409
    assert response_for(RuntimeError("not ours")) is None
