"""The installer status page at ``/`` and its JSON at ``/v1/status`` (read-only, no token).

Whoever stands at the hub's LAN sees what an installer needs and nothing a thief could use:
lock ids, states and batteries, the MQTT link, the outbox, the clock, counts of unlocks and
denials, and the kinds and times of recent lock events. Never a code, a window or task id, a
tenant, a courier, a lockout's source address or a key.

The page is one static HTML file (``static/status.html``) with its CSS and script inline; the
Content-Security-Policy allows exactly those two blocks by their SHA-256 hashes, and the script
may only fetch from this origin.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cloud_sync.protocol.messages import rfc3339

from . import __version__
from .locks.driver import LockEvent

if TYPE_CHECKING:
    from .api import ApiParts
    from .sync.link import HubLink

PAGE_RESOURCE = "static/status.html"
STATUS_ROUTE = "/v1/status"
# The page shows the last 20 lock events: a few hours of a busy site, one screen on a phone.
RECENT_EVENTS = 20
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)
# Every answer of the page's routes: nothing cached, nothing sniffed, no referrer sent.
COMMON_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True, slots=True)
class RecentEvent:
    """What the page shows of one lock event: no codes, keypad slots, request or vendor ids."""

    lock_id: str
    kind: str
    trigger: str
    at: datetime


class EventLog:
    """The last ``RECENT_EVENTS`` lock events, in memory (the outbox holds the durable ones)."""

    def __init__(self, size: int = RECENT_EVENTS) -> None:
        self._events: deque[RecentEvent] = deque(maxlen=size)

    def observe(self, event: LockEvent) -> None:
        """Remember one event."""
        self._events.append(
            RecentEvent(event.lock_id, event.kind.value, event.trigger.value, event.at)
        )

    def tap(
        self, on_event: Callable[[LockEvent], Awaitable[None]]
    ) -> Callable[[LockEvent], Awaitable[None]]:
        """A coordinator's ``on_event`` that remembers each event, then hands it on."""

        async def observed(event: LockEvent) -> None:
            self.observe(event)
            await on_event(event)

        return observed

    def newest_first(self) -> list[RecentEvent]:
        """The remembered events, newest first."""
        return list(reversed(self._events))


@dataclass(frozen=True, slots=True)
class Page:
    """The page's HTML and the CSP that allows exactly its inline blocks."""

    body: bytes
    csp: str


def _source_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


@cache
def load_page() -> Page:
    """The page shipped with the package and its Content-Security-Policy."""
    html = resources.files("gateway").joinpath(PAGE_RESOURCE).read_text(encoding="utf-8")
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for tag, content in _INLINE.findall(html):
        hashes[tag].append(_source_hash(content))
    csp = "; ".join(
        [
            "default-src 'none'",
            "script-src " + " ".join(hashes["script"]),
            "style-src " + " ".join(hashes["style"]),
            "connect-src 'self'",
            "img-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return Page(html.encode("utf-8"), csp)


def _age(seconds: float | None) -> float | None:
    return None if seconds is None else round(max(0.0, seconds), 1)


def sync_view(link: HubLink | None) -> dict[str, Any]:
    """The MQTT link as the page shows it."""
    if link is None:
        return {"configured": False, "connected": False}
    at = link.last_ack_at
    return {
        "configured": True,
        "connected": link.connected,
        "connects": link.connects,
        "last_ack_age_seconds": None if at is None else _age(link.clock() - at),
        "published_records": link.pump.published_records,
    }


def locks_view(parts: ApiParts) -> list[dict[str, Any]]:
    """Each lock's last known state (no keypad codes, no secrets)."""
    views = []
    for lock_id, coordinator in sorted(parts.engine.coordinators.items()):
        status = coordinator.state
        views.append(
            {
                "lock_id": lock_id,
                "vendor": coordinator.vendor,
                "state": status.state.value,
                "battery_percent": status.battery_percent,
                "battery_low": status.battery_low,
                "door": status.door.value,
                "breaker": str(coordinator.breaker),
            }
        )
    return views


async def outbox_view(parts: ApiParts, now: datetime) -> dict[str, Any]:
    """How many records wait for the cloud's ack, and for how long the oldest has."""
    store = parts.engine.store
    depth = await store.outbox_depth()
    parts.engine.outbox_depth = depth
    oldest = await store.unacked(1) if depth else []
    age = (now - oldest[0].created_at).total_seconds() if oldest else None
    return {"depth": depth, "oldest_age_seconds": _age(age)}


def events_view(log: EventLog | None) -> list[dict[str, str]] | None:
    """Recent lock events (None when this hub keeps no event log)."""
    if log is None:
        return None
    return [
        {"at": rfc3339(e.at), "lock_id": e.lock_id, "kind": e.kind, "trigger": e.trigger}
        for e in log.newest_first()
    ]


async def snapshot(parts: ApiParts) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready data."""
    engine = parts.engine
    clock = engine.clock.status()
    now = engine.clock.now()
    active_lockouts = [lo for lo in engine.lockouts.snapshot() if lo.locked_until is not None]
    return {
        "hub_id": engine.hub_id,
        "version": __version__,
        "generated_at": rfc3339(now),
        "locks": locks_view(parts),
        "sync": sync_view(parts.link),
        "outbox": await outbox_view(parts, now),
        "clock": {"synced": clock.synced, "source": clock.source, "hub_time": rfc3339(now)},
        "windows": engine.cache.counts(),
        "attempts": dict(sorted(engine.attempts.items())),
        "lockouts_active": len(active_lockouts),
        "events": events_view(parts.activity),
    }


async def status_page(_: web.Request) -> web.StreamResponse:
    """GET /: the page itself (static; its script reads ``STATUS_ROUTE``)."""
    loaded = load_page()
    headers = {**COMMON_HEADERS, "Content-Security-Policy": loaded.csp}
    return web.Response(
        body=loaded.body, content_type="text/html", charset="utf-8", headers=headers
    )


def status_data(parts: ApiParts) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """GET /v1/status: the page's data."""

    async def data(_: web.Request) -> web.StreamResponse:
        headers = {**COMMON_HEADERS, "Content-Security-Policy": "default-src 'none'"}
        return web.json_response(await snapshot(parts), headers=headers)

    return data
