"""Admin endpoints: bearer token required, views without code material, command batch limits."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud_sync import protocol as p
from gateway.admin import DEFAULT_WINDOWS_PAGE, MAX_WINDOWS_PAGE
from gateway.api import MAX_ADMIN_BODY
from tests.access.harness import ADMIN_TOKEN, HubHarness, running_hub

VIEWS = ["/v1/admin/windows", "/v1/admin/locks", "/v1/admin/outbox", "/v1/admin/lockouts"]
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def refused(hub: HubHarness, method: str, path: str, headers: dict[str, str]) -> None:
    response = await hub.client.request(method, path, headers=headers, data=b"[]")
    assert (response.status, await response.json()) == (401, {"error": "unauthorized"})
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="lockhub"'


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer " + "x" * len(ADMIN_TOKEN)},  # wrong, same length
        {"Authorization": "Bearer short"},  # wrong, another length
        {"Authorization": ADMIN_TOKEN},  # no scheme
        {"Authorization": f"Basic {ADMIN_TOKEN}"},
    ],
    ids=["missing", "wrong", "short", "no-scheme", "basic"],
)
async def test_admin_endpoints_need_the_bearer_token(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    async with running_hub(tmp_path) as hub:
        for path in VIEWS:
            await refused(hub, "GET", path, headers)
        await refused(hub, "POST", "/v1/admin/commands", headers)


async def test_a_token_header_that_is_not_utf8_is_refused_not_a_crash(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        reader, writer = await asyncio.open_connection(hub.client.host, hub.client.port)
        writer.write(
            b"GET /v1/admin/locks HTTP/1.1\r\nHost: hub\r\n"
            b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 401 ")
        assert b'{"error": "unauthorized"}' in answer


async def test_admin_views_show_state_but_no_code_material(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(hub.command("window.upsert", hub.upsert("w-hub", "40718263")))
        start = hub.clock.now() + timedelta(hours=1)
        later = hub.upsert(
            "w-lock",
            "52963074",
            lock_id="parcel-room",
            enforcement="lock",
            starts_at=p.rfc3339(start),
            ends_at=p.rfc3339(start + timedelta(hours=1)),
            courier={"id": "c-1", "name": "Sam"},
        )
        await hub.send(hub.command("window.upsert", later))
        assert (await hub.unlock("front-door", code="40718263"))[0] == 200
        assert (await hub.unlock("front-door", code="11112222"))[0] == 403
        await hub.quiet()

        texts = []
        for path in [*VIEWS, "/v1/admin/windows?lock_id=parcel-room&state=scheduled"]:
            response = await hub.client.get(path, headers=AUTH)
            assert response.status == 200
            texts.append(await response.text())
        shown = "\n".join(texts)

        engine = hub.hub.engine
        sealed = engine.cache.get("w-lock")
        assert sealed is not None
        assert sealed.code_sealed  # the hub still holds it: the window has not opened
        secrets = ["40718263", "52963074", sealed.code_sealed]
        for window_id in ("w-hub", "w-lock"):
            row = engine.cache.get(window_id)
            assert row is not None
            digest = row.code_hash
            secrets += [digest.hex(), base64.urlsafe_b64encode(digest).decode().rstrip("=")]
        for secret in secrets:
            assert secret not in shown

        windows = await hub.admin("/v1/admin/windows?lock_id=parcel-room")
        (view,) = windows["windows"]
        assert view["window_id"] == "w-lock"
        assert (view["state"], view["lock_side"]) == ("scheduled", "pending")
        assert view["courier"] == {"id": "c-1", "name": "Sam"}
        assert windows["counts"]["scheduled"] == 1
        active = await hub.admin("/v1/admin/windows?state=active")
        assert [w["window_id"] for w in active["windows"]] == ["w-hub"]

        locks = (await hub.admin("/v1/admin/locks"))["locks"]
        assert [lock["lock_id"] for lock in locks] == ["front-door", "parcel-room"]
        assert locks[0]["state"] == "unlocked"
        outbox = await hub.admin("/v1/admin/outbox")
        assert outbox["depth"] == await hub.hub.store.outbox_depth()
        assert outbox["head"]["seq"] == outbox["depth"]
        assert outbox["oldest"]["seq"] == 1
        lockouts = (await hub.admin("/v1/admin/lockouts"))["lockouts"]
        assert {(lo["source"], lo["failures"]) for lo in lockouts} == {("127.0.0.1", 1), ("*", 1)}


async def test_admin_outbox_is_empty_on_a_new_hub(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        assert await hub.admin("/v1/admin/outbox") == {
            "depth": 0,
            "head": {"seq": 0, "hash": p.GENESIS_HASH},
            "oldest": None,
        }


async def test_command_batches_over_the_limit_are_413_and_change_nothing(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        batch = hub.command("window.upsert", hub.upsert("w-big", "77553311"))
        padded = batch[:-1] + b" " * (MAX_ADMIN_BODY - len(batch) + 1) + b"]"
        assert len(padded) == MAX_ADMIN_BODY + 1

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length to refuse up front
            for start in range(0, len(padded), 16 * 1024):
                yield padded[start : start + 16 * 1024]

        response = await hub.client.post("/v1/admin/commands", data=chunks(), headers=AUTH)
        assert (response.status, await response.json()) == (
            413,
            {"error": "request_entity_too_large"},
        )
        assert await hub.unlock("front-door", code="77553311") == (403, {"error": "denied"})
        # Just within the limit, in pieces: the whole body is read, not the first piece.
        fits = padded[:-2] + b"]"

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(fits), 16 * 1024):
                yield fits[start : start + 16 * 1024]
                await asyncio.sleep(0)

        response = await hub.client.post("/v1/admin/commands", data=pieces(), headers=AUTH)
        assert response.status == 200, await response.text()
        status, results = await hub.send(batch)  # the same command again: a replay
        assert (status, results[0]["reason"]) == (422, "replayed")
        assert (await hub.unlock("front-door", code="77553311"))[0] == 200


async def windows_page(hub: HubHarness, query: str) -> tuple[int, dict[str, Any]]:
    response = await hub.client.get(f"/v1/admin/windows?{query}", headers=AUTH)
    return response.status, await response.json()


async def test_admin_windows_come_in_pages_that_a_cursor_walks_once_each(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        ids = [f"w-{n:03d}" for n in range(130)]
        bodies = [hub.upsert(w, f"{40000000 + n}") for n, w in enumerate(ids)]
        for start in (0, 100):  # one complete sync set of two pages
            part = {"set_version": 1, "page": 1 + start // 100, "pages": 2}
            await hub.send(
                hub.command("windows.sync", {**part, "windows": bodies[start : start + 100]})
            )
        await hub.send(
            hub.command("window.revoke", {"window_id": "w-007", "version": 1, "reason": "x"})
        )
        await hub.send(
            hub.command("window.revoke", {"window_id": "w-gone", "version": 1, "reason": "x"})
        )

        status, first = await windows_page(hub, "")
        assert status == 200
        assert [w["window_id"] for w in first["windows"]] == ids[:DEFAULT_WINDOWS_PAGE]
        assert first["next_after"] == ids[DEFAULT_WINDOWS_PAGE - 1]
        assert first["counts"] == {
            "scheduled": 0,
            "active": 129,
            "used": 0,
            "expired": 0,
            "revoked": 2,
        }

        seen: list[str] = []
        after = None
        while True:
            query = "limit=7" + ("" if after is None else f"&after={after}")
            status, page = await windows_page(hub, query)
            assert status == 200
            assert len(page["windows"]) <= 7
            seen += [w["window_id"] for w in page["windows"]]
            after = page["next_after"]
            if after is None:
                break
        assert seen == ids  # every window once, in id order; no tombstone ("w-gone")

        revoked: list[str] = []
        after = None
        while True:
            query = "state=revoked&limit=1" + ("" if after is None else f"&after={after}")
            page = (await windows_page(hub, query))[1]
            revoked += [w["window_id"] for w in page["windows"]]
            assert all(w["state"] == "revoked" for w in page["windows"])
            after = page["next_after"]
            if after is None:
                break
        assert revoked == ["w-007"]
        status, last = await windows_page(hub, f"limit={MAX_WINDOWS_PAGE}&after=w-120")
        assert [w["window_id"] for w in last["windows"]] == ids[121:]
        assert last["next_after"] is None


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("limit=0", "limit must be an integer from 1 to 1000"),
        (f"limit={MAX_WINDOWS_PAGE + 1}", "limit must be an integer from 1 to 1000"),
        ("limit=ten", "limit must be an integer from 1 to 1000"),
        ("limit=-5", "limit must be an integer from 1 to 1000"),
        ("state=open", "state must be one of scheduled, active, used, expired, revoked"),
        ("after=" + "x" * 129, "after must be a window_id (1 to 128 characters)"),
        ("after=", "after must be a window_id (1 to 128 characters)"),
    ],
)
async def test_admin_windows_refuse_a_bad_page_request_with_a_detail(
    tmp_path: Path, query: str, detail: str
) -> None:
    async with running_hub(tmp_path) as hub:
        assert await windows_page(hub, query) == (400, {"error": "bad_request", "detail": detail})
