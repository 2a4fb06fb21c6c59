"""Admin endpoints of the local API: read-only views, and signed commands for offline sites.

Views never include a code, a code hash or a sealed code. ``POST /v1/admin/commands`` takes
the same signed command batches the cloud sends over MQTT: a technician can bring window
changes to a site with no uplink, and the hub verifies them exactly as if they came from the
cloud (the admin token alone cannot create a window).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from cloud_sync.protocol.messages import rfc3339

from .httpbody import read_body
from .store import WindowRow

if TYPE_CHECKING:
    from .api import ApiParts


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
        """GET /v1/admin/windows[?lock_id=&state=]."""
        engine = self.parts.engine
        lock_id = request.query.get("lock_id")
        wanted = request.query.get("state")
        views = []
        for row in engine.cache:
            if row.origin == "tombstone" or (lock_id and row.lock_id != lock_id):
                continue
            state = engine.window_state(row)
            if wanted is None or state == wanted:
                views.append(window_view(row, state))
        views.sort(key=lambda v: (v["starts_at"], v["window_id"]))
        return web.json_response({"windows": views, "counts": engine.cache.counts()})

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
