"""POST /v1/locks/{lock_id}/unlock: JSON errors, one 403 for every kind of wrong, lockouts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse

from cloud_sync import protocol as p
from gateway.api import MAX_UNLOCK_BODY
from tests.access.harness import HubHarness, running_hub

UNLOCK = "/v1/locks/front-door/unlock"
# Headers that legitimately differ between two answers.
VOLATILE = {"Date"}


async def post_raw(hub: HubHarness, body: bytes, path: str = UNLOCK) -> tuple[int, Any]:
    response = await hub.client.post(path, data=body, headers={"Content-Type": "application/json"})
    return response.status, await response.json()


async def whole(response: ClientResponse) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k not in VOLATILE}
    return response.status, headers, await response.read()


async def test_unknown_routes_and_methods_answer_json(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        response = await hub.client.get("/v1/nowhere")
        assert (response.status, await response.json()) == (404, {"error": "not_found"})
        response = await hub.client.get(UNLOCK)
        assert (response.status, await response.json()) == (405, {"error": "method_not_allowed"})
        assert response.headers["Allow"] == "POST"


async def test_an_unknown_lock_gets_the_identical_403_and_leaves_no_trace(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        wrong = await whole(await hub.client.post(UNLOCK, json={"code": "12121212"}))
        before = await hub.hub.store.outbox_depth()
        unknown = [
            await whole(await hub.client.post(f"/v1/locks/{lock_id}/unlock", json=credential))
            for lock_id, credential in [
                ("nowhere", {"code": "12121212"}),
                ("x" * 300, {"code": "12121212"}),  # longer than any identifier
                ("back-door", {"token": hub.token("w-1", lock_id="back-door")}),
            ]
            for _ in range(10)  # well past the lockout threshold of a real lock
        ]
        # The same status, headers and bytes as a wrong code on a lock that exists.
        assert wrong[0] == 403
        assert all(answer == wrong for answer in unknown)
        # Counted like any denial, but no record and no lockout row for made-up lock ids.
        assert hub.hub.engine.attempts == {"denied": 1 + len(unknown)}
        assert await hub.hub.store.outbox_depth() == before
        lockouts = await hub.hub.store.list_lockouts()
        assert {lockout.lock_id for lockout in lockouts} == {"front-door"}
        metrics = await (await hub.client.get("/metrics")).text()
        assert f'lockhub_unlock_attempts_total{{result="denied"}} {1 + len(unknown)}' in metrics


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "body is not JSON"),
        (b"\xff\xfe", "body is not JSON"),
        (b'{"code": "\\ud800"}', "body is not JSON"),  # a lone surrogate: no UTF-8 for it
        (b"[" * 40 + b"]" * 40, "body is not JSON"),  # nesting past the parser's bound
        (b'{"code": "12345678", "code": "87654321"}', "body is not JSON"),  # duplicate keys
        (b'["code", "12345678"]', "body must be a JSON object"),
        (b'"12345678"', "body must be a JSON object"),
        (b"{}", 'send exactly one of "code" or "token"'),
        (b'{"code": "12345678", "token": "abc"}', 'send exactly one of "code" or "token"'),
        (b'{"code": 12345678}', 'send exactly one of "code" or "token"'),
        (b'{"code": "12345678", "lock": "x"}', 'send exactly one of "code" or "token"'),
    ],
)
async def test_malformed_bodies_are_400_with_a_detail(
    tmp_path: Path, body: bytes, detail: str
) -> None:
    async with running_hub(tmp_path) as hub:
        assert await post_raw(hub, body) == (400, {"error": "bad_request", "detail": detail})
        assert hub.hub.engine.attempts == {}  # never reached the engine


async def test_a_body_over_the_limit_is_413(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        padded = b'{"code": "12345678", "pad": "' + b"x" * MAX_UNLOCK_BODY + b'"}'
        assert await post_raw(hub, padded) == (413, {"error": "request_entity_too_large"})

        async def chunks() -> Any:  # no Content-Length: the limit holds on the bytes read
            yield padded

        response = await hub.client.post(UNLOCK, data=chunks())
        assert response.status == 413


async def test_every_kind_of_wrong_gets_the_identical_403(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        now = hub.clock.now()
        await hub.send(hub.command("window.upsert", hub.upsert("w-ok", "11223344")))
        past = {
            "starts_at": p.rfc3339(now - timedelta(hours=3)),
            "ends_at": p.rfc3339(now - timedelta(hours=2)),
        }
        await hub.send(hub.command("window.upsert", hub.upsert("w-old", "55667788", **past)))
        await hub.send(hub.command("window.upsert", hub.upsert("w-rev", "99001122")))
        revoke = {"window_id": "w-rev", "version": 1, "reason": "cancelled"}
        await hub.send(hub.command("window.revoke", revoke))

        async def attempt(**credential: str) -> tuple[int, dict[str, str], bytes]:
            return await whole(await hub.client.post(UNLOCK, json=credential))

        answers = [
            await attempt(code="12121212"),  # wrong code
            await attempt(code="abcdefgh"),  # not a code at all
            await attempt(code="55667788"),  # its window has ended
            await attempt(code="99001122"),  # its window was revoked
        ]
        # A right answer resets this source's count, keeping the next ones below the lockout.
        assert (await hub.unlock("front-door", code="11223344"))[0] == 200
        answers += [
            await attempt(token="not-a-token"),  # noqa: S106 - not a token at all
            await attempt(token=hub.token("w-x", lock_id="parcel-room")),  # another lock's
        ]

        first = answers[0]
        assert first[0] == 403
        assert first[2] == b'{"error": "denied"}'
        assert all(answer == first for answer in answers)
        denied = [r["body"] for r in await hub.records() if r["type"] == "access.denied"]
        reasons = [d["reason"] for d in denied]
        assert reasons == [
            "no_match",
            "no_match",
            "not_active",
            "revoked",
            "bad_token",
            "bad_token",
        ]


async def test_five_wrong_codes_lock_the_source_out_even_for_the_right_code(
    tmp_path: Path,
) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(hub.command("window.upsert", hub.upsert("w-1", "31415926")))
        for _ in range(5):
            assert (await hub.unlock("front-door", code="27182818"))[0] == 403

        response = await hub.client.post(UNLOCK, json={"code": "31415926"})
        assert (response.status, await response.json()) == (423, {"error": "locked_out"})
        retry_after = response.headers["Retry-After"]
        assert retry_after.isdigit()
        assert 1 <= int(retry_after) <= 30

        await hub.advance(int(retry_after))
        assert (await hub.unlock("front-door", code="31415926"))[0] == 200
        assert hub.hub.engine.attempts == {"denied": 5, "locked_out": 1, "unlocked": 1}
