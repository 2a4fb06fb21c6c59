"""The webhook endpoints API: secrets shown once, rotation, test events, retries, the log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError as ReferenceError_

from cloud_sync.api.webhooks import check_url
from cloud_sync.webhooks import verify_standard
from cloud_sync.webhooks.delivery import DeliveryWorker
from tests.cloud.conftest import SettableClock

from .conftest import Api, Receiver

ENDPOINTS = "/v1/acme/webhooks/endpoints"


async def create(api: Api, receiver: Receiver, **body: object) -> dict[str, object]:
    status, answer = await api.call("POST", ENDPOINTS, json={"url": receiver.url, **body})
    assert status == 201, answer
    return dict(answer)


async def test_create_shows_the_secret_once_and_crud_works(api: Api, receiver: Receiver) -> None:
    made = await create(api, receiver, event_types=["billing.carrier_cost"], description="ERP")
    secret = made["secret"]
    assert isinstance(secret, str)
    assert secret.startswith("whsec_")
    path = f"{ENDPOINTS}/{made['id']}"
    assert await api.call("GET", f"{path}/deliveries") == (200, {"deliveries": []})
    status, shown = await api.call("GET", path)
    assert status == 200
    assert "secret" not in shown
    assert shown["event_types"] == ["billing.carrier_cost"]
    assert (shown["enabled"], shown["description"]) == (True, "ERP")
    status, listed = await api.call("GET", ENDPOINTS)
    assert [e["id"] for e in listed["endpoints"]] == [made["id"]]
    assert all("secret" not in e for e in listed["endpoints"])

    status, patched = await api.call(
        "PATCH", path, json={"event_types": ["webhook.test", "webhook.test"], "enabled": False}
    )
    assert status == 200
    assert (patched["event_types"], patched["enabled"]) == (["webhook.test"], False)
    assert patched["disabled_reason"] == "user"
    status, patched = await api.call("PATCH", path, json={"enabled": True, "url": receiver.url})
    assert (status, patched["enabled"], patched["disabled_reason"]) == (200, True, None)

    # Another tenant cannot see or touch it.
    assert (await api.call("GET", f"/v1/other/webhooks/endpoints/{made['id']}", other=True))[
        0
    ] == 404
    assert (await api.call("GET", path, other=True))[0] == 404

    response = await api.client.delete(path, headers={"Authorization": f"Bearer {api.key}"})
    assert response.status == 204
    assert (await api.call("GET", path))[0] == 404
    assert (await api.call("GET", f"{ENDPOINTS}/not-a-ulid"))[0] == 404


# Input validation happens before any SQL: one backend is enough.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "/relative"}, "url"),
        ({"url": "http://[::1"}, "url"),
        ({"url": "https://example.com", "event_types": ["Billing"]}, "event_types.0"),
        ({"url": "https://example.com", "extra": 1}, "extra"),
        ({"event_types": []}, "url"),
    ],
)
async def test_bad_endpoint_bodies_are_a_400(api: Api, body: dict[str, object], field: str) -> None:
    status, answer = await api.call("POST", ENDPOINTS, json=body)
    assert status == 400
    assert answer["field"] == field


async def test_bad_patches_are_a_400(api: Api, receiver: Receiver) -> None:
    made = await create(api, receiver)
    path = f"{ENDPOINTS}/{made['id']}"
    for body, field in (({"url": None}, "body"), ({"url": "gopher://x"}, "url"),
                        ({"enabled": "yes"}, "enabled"), ({"enabled": None}, "body"),
                        ({"event_types": None}, "body")):  # fmt: skip
        status, answer = await api.call("PATCH", path, json=body)
        assert (status, answer["field"]) == (400, field)


def test_https_is_required_unless_plain_http_is_allowed() -> None:
    assert check_url("https://hooks.example.com/in", allow_http=False)
    with pytest.raises(ValueError, match="https URL"):
        check_url("http://hooks.example.com/in", allow_http=False)
    with pytest.raises(ValueError, match="absolute"):
        check_url("https://example.com/#frag", allow_http=True)


async def test_the_test_event_is_delivered_and_logged(
    api: Api, receiver: Receiver, worker: DeliveryWorker
) -> None:
    made = await create(api, receiver, event_types=["billing.carrier_cost"])
    status, queued = await api.call("POST", f"{ENDPOINTS}/{made['id']}/test")
    assert status == 202
    assert (queued["event_type"], queued["status"], queued["attempts"]) == (
        "webhook.test", "pending", 0,
    )  # fmt: skip
    assert await worker.run_once() == 1
    [request] = receiver.received
    payload = Webhook(str(made["secret"])).verify(request.body, request.headers)
    assert payload["type"] == "webhook.test"
    assert payload["data"]["endpoint_id"] == made["id"]
    status, log = await api.call("GET", f"{ENDPOINTS}/{made['id']}/deliveries")
    assert status == 200
    [entry] = log["deliveries"]
    assert (entry["status"], entry["attempts"], entry["last_status_code"]) == ("delivered", 1, 204)
    assert entry["message_id"] == request.headers["webhook-id"]
    [attempt] = entry["attempt_log"]
    assert (attempt["attempt"], attempt["status_code"], attempt["error"]) == (1, 204, None)


async def test_a_manual_retry_sends_a_failed_delivery_once_more(
    api: Api, receiver: Receiver, worker: DeliveryWorker, clock: SettableClock
) -> None:
    made = await create(api, receiver)
    _, queued = await api.call("POST", f"{ENDPOINTS}/{made['id']}/test")
    receiver.default = 500
    for delay in (0, 5, 300, 1800, 7200, 18000, 36000, 36000):
        clock.advance(delay)
        assert await worker.run_once() == 1
    retry = f"/v1/acme/webhooks/deliveries/{queued['id']}/retry"
    _, log = await api.call("GET", f"{ENDPOINTS}/{made['id']}/deliveries")
    assert log["deliveries"][0]["status"] == "failed"

    # A manual retry that fails again is one attempt, not a new schedule.
    status, retried = await api.call("POST", retry)
    assert (status, retried["status"]) == (202, "pending")
    assert await worker.run_once() == 1
    clock.advance(36000)
    assert await worker.run_once() == 0
    _, log = await api.call("GET", f"{ENDPOINTS}/{made['id']}/deliveries")
    assert (log["deliveries"][0]["status"], log["deliveries"][0]["attempts"]) == ("failed", 9)

    receiver.default = 200
    assert (await api.call("POST", retry))[0] == 202
    assert await worker.run_once() == 1
    _, log = await api.call("GET", f"{ENDPOINTS}/{made['id']}/deliveries")
    entry = log["deliveries"][0]
    assert (entry["status"], entry["attempts"], len(entry["attempt_log"])) == ("delivered", 10, 10)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1

    unknown = "/v1/acme/webhooks/deliveries/01JZZZZZZZZZZZZZZZZZZZZZZZ/retry"
    assert (await api.call("POST", unknown))[0] == 404
    assert (await api.call("POST", retry, other=True))[0] == 404
    other_tenant = f"/v1/other/webhooks/deliveries/{queued['id']}/retry"
    assert (await api.call("POST", other_tenant, other=True))[0] == 404


async def test_rotation_signs_with_both_secrets_for_24_hours(
    api: Api, receiver: Receiver, worker: DeliveryWorker, clock: SettableClock
) -> None:
    made = await create(api, receiver)
    old = str(made["secret"])
    path = f"{ENDPOINTS}/{made['id']}"
    status, rotated = await api.call("POST", f"{path}/rotate-secret")
    assert status == 200
    new = rotated["secret"]
    assert new != old
    assert new.startswith("whsec_")
    assert rotated["previous_secret_expires_at"] is not None

    await api.call("POST", f"{path}/test")
    assert await worker.run_once() == 1
    during = receiver.received[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Webhook(new).verify(during.body, during.headers)
    Webhook(old).verify(during.body, during.headers)

    clock.advance(timedelta(hours=24).total_seconds())
    await api.call("POST", f"{path}/test")
    assert await worker.run_once() == 1
    after = receiver.received[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    verify_standard([new], after.body, after.headers, now=clock())
    with pytest.raises(Exception, match="bad_signature"):
        verify_standard([old], after.body, after.headers, now=clock())
    with pytest.raises(ReferenceError_):  # and the reference library agrees on the old one
        Webhook(old).verify(during.body, during.headers | {"webhook-signature":
                            during.headers["webhook-signature"].split(" ")[0]})  # fmt: skip
