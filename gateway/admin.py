"""Admin endpoints of the local API: read-only views, and signed commands for offline sites.

Views never include a code, a code hash or a sealed code. ``POST /v1/admin/commands`` takes
the same signed command batches the cloud sends over MQTT: a technician can bring window
changes to a site with no uplink, and the hub verifies them exactly as if they came from the
cloud (the admin token alone cannot create a window).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cloud_sync.protocol.messages import rfc3339

from .access.windows import WindowState
from .httpbody import read_body
from .store import WindowRow

if TYPE_CHECKING:
    from .api import ApiParts

# Windows per page of GET /v1/admin/windows: a page of the default size serialises in about a
# millisecond; the maximum bounds what one request can make the event loop do.
DEFAULT_WINDOWS_PAGE = 100
MAX_WINDOWS_PAGE = 1000
# Window ids are identifiers of at most 128 characters (protocol); a longer cursor is wrong.
MAX_CURSOR_LENGTH = 128
# The stored states a window may be in while its current state is the key: a deadline moves
# scheduled and active windows on before the engine writes the new state.
_STORED_STATES = {
    WindowState.SCHEDULED: frozenset({"scheduled"}),
    WindowState.ACTIVE: frozenset({"scheduled", "active"}),
    WindowState.USED: frozenset({"scheduled", "active", "used"}),
    WindowState.EXPIRED: frozenset({"scheduled", "active", "expired"}),
    WindowState.REVOKED: frozenset({"revoked"}),
}


def _bad_query(detail: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"error": "bad_request", "detail": detail}),
        content_type="application/json",
    )


def _page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_WINDOWS_PAGE
    if not raw.isdecimal() or not 1 <= int(raw) <= MAX_WINDOWS_PAGE:
        raise _bad_query(f"limit must be an integer from 1 to {MAX_WINDOWS_PAGE}")
    return int(raw)


def _wanted_state(raw: str | None) -> WindowState | None:
    if raw is None:
        return None
    try:
        return WindowState(raw)
    except ValueError:
        names = ", ".join(state.value for state in WindowState)
        raise _bad_query(f"state must be one of {names}") from None


def _cursor(raw: str | None) -> str | None:
    if raw is not None and not 1 <= len(raw) <= MAX_CURSOR_LENGTH:
        raise _bad_query(f"after must be a window_id (1 to {MAX_CURSOR_LENGTH} characters)")
    return raw


def window_view(row: WindowRow, state: str) -> dict[str, Any]:
    """A window as the admin API shows it (no code material)."""
    return {
        "window_id": row.window_id,
        "tenant_id": row.tenant_id,
        "task_id": row.task_id,
        "lock_id": row.lock_id,
        "starts_at": rfc3339(row.starts_at),
        "ends_at": rfc3339(row.ends_at),
        "version": row.version,
        "max_uses": row.max_uses,
        "uses": row.uses,
        "enforcement": row.enforcement,
        "state": state,
        "lock_side": row.lock_side,
        "origin": row.origin,
        "courier": None
        if row.courier is None
        else {"id": row.courier.id, "name": row.courier.name},
    }


class AdminApi:
    """Handlers behind the admin token."""

    def __init__(self, parts: ApiParts) -> None:
        self.parts = parts

    async def windows(self, request: web.Request) -> web.Response:
        """GET /v1/admin/windows[?lock_id=&state=&limit=&after=]: one page, by window_id.

        ``next_after`` is the cursor of the next page (null on the last one). Each page is read
        from the store by index in chunks, so no request walks every window at once.
        """
        engine = self.parts.engine
        limit = _page_size(request.query.get("limit"))
        wanted = _wanted_state(request.query.get("state"))
        after = _cursor(request.query.get("after"))
        lock_id = request.query.get("lock_id") or None
        stored = None if wanted is None else _STORED_STATES[wanted]
        # A state filter may skip rows: read at least a default page's worth per query.
        chunk = max(limit, DEFAULT_WINDOWS_PAGE)
        views: list[dict[str, Any]] = []
        while True:
            rows = await engine.store.page_windows(after, chunk, lock_id=lock_id, states=stored)
            for row in rows:
                after = row.window_id
                state = engine.window_state(row)
                if wanted is None or state == wanted:
                    views.append(window_view(row, state))
                    if len(views) == limit:
                        break
            if len(views) == limit or len(rows) < chunk:
                break
        more = len(views) == limit
        body = {
            "windows": views,
            "next_after": after if more else None,
            "counts": engine.cache.counts(),
        }
        return web.json_response(body)

    async def locks(self, _: web.Request) -> web.Response:
        """GET /v1/admin/locks."""
        locks = []
        for lock_id, coordinator in sorted(self.parts.engine.coordinators.items()):
            status = coordinator.state
            locks.append(
                {
                    "lock_id": lock_id,
                    "vendor": coordinator.vendor,
                    "state": status.state.value,
                    "battery_percent": status.battery_percent,
                    "battery_low": status.battery_low,
                    "door": status.door.value,
                    "keypad": coordinator.has_keypad,
                    "breaker": str(coordinator.breaker),
                }
            )
        return web.json_response({"locks": locks})

    async def outbox(self, _: web.Request) -> web.Response:
        """GET /v1/admin/outbox: depth, chain head and the oldest waiting record."""
        store = self.parts.engine.store
        head = await store.chain_head()
        oldest = await store.unacked(1)
        return web.json_response(
            {
                "depth": await store.outbox_depth(),
                "head": {"seq": head.seq, "hash": head.hash},
                "oldest": None
                if not oldest
                else {
                    "seq": oldest[0].seq,
                    "type": oldest[0].type,
                    "created_at": rfc3339(oldest[0].created_at),
                },
            }
        )

    async def lockouts(self, _: web.Request) -> web.Response:
        """GET /v1/admin/lockouts."""
        items = [
            {
                "lock_id": lockout.lock_id,
                "source": lockout.source,
                "failures": lockout.failures,
                "level": lockout.level,
                "locked_until": None
                if lockout.locked_until is None
                else rfc3339(lockout.locked_until),
            }
            for lockout in self.parts.engine.lockouts.snapshot()
        ]
        return web.json_response({"lockouts": items})

    async def commands(self, request: web.Request) -> web.Response:
        """POST /v1/admin/commands: a signed command batch, verified like one from MQTT."""
        from .api import MAX_ADMIN_BODY  # noqa: PLC0415 - avoids an import cycle

        data = await read_body(request, MAX_ADMIN_BODY)
        results = await self.parts.intake.handle(data)
        body = [
            {"result": r.result, "reason": r.reason, "command_id": r.command_id} for r in results
        ]
        status = 200 if all(r.result == "applied" for r in results) else 422
        return web.json_response({"results": body}, status=status)
