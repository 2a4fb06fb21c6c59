"""The status page and its JSON: what they show, what they never show, and their headers."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer

from gateway.api import ApiParts, build_app
from gateway.hubmetrics import hub_metrics
from gateway.locks.driver import EventKind, LockEvent, Trigger
from gateway.statuspage import RECENT_EVENTS, EventLog, load_page
from tests.access.harness import running_hub
from tests.statuspage.site import SECRETS, busy_site

INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def csp_directives(header: str) -> dict[str, list[str]]:
    """The policy's directives by name."""
    parts = (item.split() for item in header.split(";") if item.strip())
    return {name: values for name, *values in parts}


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


async def test_page_is_public_and_locked_down_by_its_headers(tmp_path: Path) -> None:
    async with busy_site(tmp_path) as site, ClientSession() as http:
        response = await http.get(site.url + "/")  # no Authorization header
        assert response.status == 200
        assert response.content_type == "text/html"
        html = await response.text()
        headers = response.headers
        assert headers["Cache-Control"] == "no-store"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        policy = csp_directives(headers["Content-Security-Policy"])
        blocks = INLINE.findall(html)
        assert sorted(tag for tag, _ in blocks) == ["script", "style"]
        for tag, content in blocks:
            assert policy[f"{tag}-src"] == [sha256_source(content)]  # that block and no other
        assert policy["default-src"] == ["'none'"]
        assert policy["connect-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert "unsafe" not in headers["Content-Security-Policy"]
        # Nothing the policy would block: no style attributes, no inline handlers, no URLs out.
        assert not re.search(r"\sstyle=|\son[a-z]+=", html)
        assert not re.search(r"(src|href)=\"(https?:)?//", html)

        data = await http.get(site.url + "/v1/status")
        assert data.status == 200
        assert data.headers["Cache-Control"] == "no-store"
        assert data.headers["X-Content-Type-Options"] == "nosniff"


async def test_status_data_shows_locks_link_outbox_clock_and_events(tmp_path: Path) -> None:
    async with busy_site(tmp_path) as site, ClientSession() as http:
        body = await (await http.get(site.url + "/v1/status")).json()
        store = site.harness.hub.store
        assert body["hub_id"] == "hub-test"
        locks = {lock["lock_id"]: lock for lock in body["locks"]}
        assert locks["front-door"]["state"] == "unlocked"
        assert locks["parcel-room"] == {
            "lock_id": "parcel-room",
            "vendor": "sim",
            "state": "locked",
            "battery_percent": 14,
            "battery_low": True,
            "door": "closed",
            "breaker": "closed",
        }
        assert body["sync"] == {
            "configured": True,
            "connected": False,
            "connects": 0,
            "last_ack_age_seconds": None,
            "published_records": 0,
        }
        assert body["outbox"]["depth"] == await store.outbox_depth() > 0
        assert body["outbox"]["oldest_age_seconds"] == 0  # the FakeClock has not moved
        assert body["clock"]["synced"] is True
        assert body["clock"]["source"] == "ntp"
        assert body["attempts"] == {"denied": 1, "unlocked": 1}
        assert body["windows"]["active"] == 1
        assert [(e["lock_id"], e["kind"]) for e in body["events"]] == [
            ("parcel-room", "battery"),
            ("front-door", "unlocked"),
        ]

        site.harness.clock.advance(90)
        later = await (await http.get(site.url + "/v1/status")).json()
        assert later["outbox"]["oldest_age_seconds"] == 90


async def test_neither_the_page_nor_its_data_leak_codes_ids_or_names(tmp_path: Path) -> None:
    async with busy_site(tmp_path) as site, ClientSession() as http:
        texts = [await (await http.get(site.url + path)).text() for path in ("/", "/v1/status")]
        for text in texts:
            for secret in SECRETS:
                assert secret not in text
            assert "127.0.0.1" not in text  # a denial's or lockout's source address
        body = await (await http.get(site.url + "/v1/status")).json()
        assert set(body) == {
            "hub_id", "version", "generated_at", "locks", "sync", "outbox", "clock", "windows",
            "attempts", "lockouts_active", "events",
        }  # fmt: skip
        assert all(set(e) == {"at", "lock_id", "kind", "trigger"} for e in body["events"])


async def test_without_a_link_or_event_log_the_page_says_so(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        parts = ApiParts(
            engine=hub.hub.engine,
            intake=hub.hub.intake,
            metrics=hub_metrics(hub.hub.engine),
            admin_token=None,
            ready=hub.hub.ready,
        )
        async with TestClient(TestServer(build_app(parts))) as client:
            body = await (await client.get("/v1/status")).json()
        assert body["sync"] == {"configured": False, "connected": False}
        assert body["events"] is None
        assert body["outbox"] == {"depth": 0, "oldest_age_seconds": None}


async def test_event_log_keeps_the_newest_events_only() -> None:
    log = EventLog()
    forwarded: list[LockEvent] = []

    async def engine(event: LockEvent) -> None:
        forwarded.append(event)

    tapped = log.tap(engine)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(RECENT_EVENTS + 5):
        event = LockEvent(
            "front-door", EventKind.LOCKED, at, "sim", f"v-{n}", Trigger.KEYPAD, keypad_code_id=n
        )
        await tapped(event)
    assert len(forwarded) == RECENT_EVENTS + 5  # every event still reaches the engine
    kept = log.newest_first()
    assert len(kept) == RECENT_EVENTS
    assert kept[0].kind == "locked"
    assert kept[0].trigger == "keypad"
    assert not hasattr(kept[0], "keypad_code_id")


def test_page_loads_once_and_hashes_what_it_serves() -> None:
    page = load_page()
    assert load_page() is page
    for _, content in INLINE.findall(page.body.decode()):
        assert sha256_source(content) in page.csp
