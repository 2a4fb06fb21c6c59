"""``GET /v1/{tenant}/billing/export``: the FOCUS-style export of a range, CSV or JSONL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from aiohttp import web

from cloud_sync.billing.export import Format, digest, export_range
from cloud_sync.billing.focus import CSV_MEDIA_TYPE, JSONL_MEDIA_TYPE
from cloud_sync.requests import parse_date_time
from cloud_sync.store import utc_now
from cloud_sync.store.engine import Database

from .http import TENANT, bad_request

log = structlog.get_logger(__name__)

EXPORT_PATH = "/v1/{tenant}/billing/export"
_PARAMS = frozenset({"from", "to", "format"})
_MEDIA: dict[str, str] = {"csv": CSV_MEDIA_TYPE, "jsonl": JSONL_MEDIA_TYPE}
Wake = Callable[[], None]


def _one(request: web.Request, name: str) -> str:
    values = request.query.getall(name, [])
    if len(values) != 1:
        raise bad_request(name, "give exactly one value")
    return values[0]


def _moment(request: web.Request, name: str) -> datetime:
    try:
        return parse_date_time(_one(request, name))
    except ValueError as exc:
        raise bad_request(name, str(exc)) from exc


def _format(request: web.Request) -> Format:
    if "format" not in request.query:
        return "csv"
    value = _one(request, "format")
    if value == "csv":
        return "csv"
    if value == "jsonl":
        return "jsonl"
    raise bad_request("format", "must be csv or jsonl")


@dataclass
class BillingApi:
    """The export handler over the database."""

    db: Database
    now: Callable[[], datetime]
    wake: Wake | None

    async def export(self, request: web.Request) -> web.Response:
        """GET /v1/{tenant}/billing/export?from=&to=&format=csv|jsonl."""
        unknown = set(request.query) - _PARAMS
        if unknown:
            raise bad_request(sorted(unknown)[0], "unknown query parameter")
        start, end, fmt = _moment(request, "from"), _moment(request, "to"), _format(request)
        tenant, now = request[TENANT], self.now()
        made, created = await self.db.write(
            lambda conn: export_range(conn, tenant, start, end, now)
        )
        if created:
            log.info("billing.exported", export_id=made.export_id, events=made.event_count)
            if self.wake is not None:
                self.wake()
        body = made.body(fmt)
        headers = {
            "X-Export-Id": made.export_id,
            "X-Export-Event-Count": str(made.event_count),
            "ETag": f'"{digest(body)}"',
            "Content-Disposition": f'attachment; filename="billing-{made.export_id}.{fmt}"',
        }
        return web.Response(body=body, headers=headers, content_type=_MEDIA[fmt], charset="utf-8")


def add_billing_routes(
    app: web.Application,
    db: Database,
    *,
    now: Callable[[], datetime] = utc_now,
    wake: Wake | None = None,
) -> None:
    """Serve the billing routes on ``app``; ``wake`` nudges the webhook worker."""
    api = BillingApi(db, now, wake)
    app.router.add_get(EXPORT_PATH, api.export, allow_head=False)
