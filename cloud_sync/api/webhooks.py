"""Webhook endpoints, their secrets, deliveries, manual retries and test events."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, ValidationError, field_validator
from yarl import URL

from cloud_sync.errors import NotFoundError
from cloud_sync.protocol.fields import Text, rfc3339
from cloud_sync.protocol.ids import ULID_PATTERN
from cloud_sync.requests import Strict
from cloud_sync.store import utc_now
from cloud_sync.store.billing_schema import URL as MAX_URL
from cloud_sync.store.engine import Database
from cloud_sync.webhooks import endpoints, outbox
from cloud_sync.webhooks.endpoints import DISABLED_BY_USER, EndpointRow
from cloud_sync.webhooks.outbox import TEST_EVENT, AttemptRow, DeliveryRow

from .http import TENANT, bad_request, invalid, not_found, read_object

ENDPOINTS = "/v1/{tenant}/webhooks/endpoints"
# An endpoint subscribes to a handful of types; 64 covers every type we will ever emit.
MAX_EVENT_TYPES = 64
# The delivery log page: the newest 100 are what someone debugging a receiver looks at.
MAX_DELIVERIES = 100
EventType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length=64)]
NO_STORE = {"Cache-Control": "no-store"}
# PATCH fields that may be left out but never set to null.
_REQUIRED = ("url", "event_types", "enabled")


class EndpointIn(Strict):
    """The body of ``POST .../webhooks/endpoints``."""

    url: Annotated[str, Field(min_length=1, max_length=MAX_URL)]
    event_types: Annotated[list[EventType], Field(max_length=MAX_EVENT_TYPES, default_factory=list)]
    description: Text | None = None


class EndpointPatch(Strict):
    """The body of ``PATCH .../webhooks/endpoints/{id}``: only the fields to change."""

    url: Annotated[str, Field(min_length=1, max_length=MAX_URL)] | None = None
    event_types: Annotated[list[EventType], Field(max_length=MAX_EVENT_TYPES)] | None = None
    description: Text | None = None
    enabled: bool | None = None

    @field_validator("event_types")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else sorted(set(value))


def check_url(value: str, *, allow_http: bool) -> str:
    """An absolute http(s) URL with a host; plain http only where allowed (tests, dev)."""
    try:
        url = URL(value)
    except ValueError:
        url = URL()
    schemes = {"https", "http"} if allow_http else {"https"}
    if url.scheme not in schemes or not url.host or url.fragment:
        raise ValueError(f"must be an absolute {' or '.join(sorted(schemes))} URL")
    return value


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def endpoint_json(row: EndpointRow) -> dict[str, Any]:
    """The public view of an endpoint (never its secrets)."""
    return {
        "id": row.endpoint_id, "url": row.url, "description": row.description,
        "event_types": row.event_types, "enabled": row.enabled,
        "disabled_reason": row.disabled_reason, "created_at": rfc3339(row.created_at),
        "updated_at": rfc3339(row.updated_at),
        "previous_secret_expires_at": _when(row.previous_secret_expires_at),
    }  # fmt: skip


def delivery_json(row: DeliveryRow, attempts: list[AttemptRow] | None = None) -> dict[str, Any]:
    """The public view of a delivery and its attempts."""
    view = {
        "id": row.delivery_id, "endpoint_id": row.endpoint_id, "message_id": row.message_id,
        "event_type": row.event_type, "status": row.status, "attempts": row.attempts,
        "next_attempt_at": _when(row.next_attempt_at),
        "last_attempt_at": _when(row.last_attempt_at),
        "last_status_code": row.last_status_code, "last_error": row.last_error,
        "created_at": rfc3339(row.created_at),
    }  # fmt: skip
    if attempts is not None:
        view["attempt_log"] = [
            {"attempt": a.attempt, "attempted_at": rfc3339(a.attempted_at),
             "status_code": a.status_code, "error": a.error, "duration_ms": a.duration_ms}
            for a in attempts
        ]  # fmt: skip
    return view


def _id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not ULID_PATTERN.fullmatch(value):
        raise not_found()
    return value


@dataclass
class WebhooksApi:
    """Handlers over the database; ``wake`` nudges the delivery worker."""

    db: Database
    now: Callable[[], datetime]
    wake: Callable[[], None] | None
    allow_http: bool

    def _nudge(self) -> None:
        if self.wake is not None:
            self.wake()

    def _url(self, value: str) -> str:
        try:
            return check_url(value, allow_http=self.allow_http)
        except ValueError as exc:
            raise bad_request("url", str(exc)) from exc

    async def create(self, request: web.Request) -> web.Response:
        """POST .../webhooks/endpoints: the secret is in this answer only."""
        try:
            body = EndpointIn.model_validate(await read_object(request))
        except ValidationError as error:
            raise invalid(error) from error
        url, tenant, now = self._url(body.url), request[TENANT], self.now()
        row = await self.db.write(
            lambda conn: endpoints.create(
                conn,
                tenant,
                url=url,
                event_types=sorted(set(body.event_types)),
                description=body.description,
                now=now,
            )
        )
        answer = {**endpoint_json(row), "secret": row.secret}
        headers = {**NO_STORE, "Location": f"{request.path}/{row.endpoint_id}"}
        return web.json_response(answer, status=201, headers=headers)

    async def list(self, request: web.Request) -> web.Response:
        """GET .../webhooks/endpoints."""
        async with self.db.read() as conn:
            rows = await endpoints.list_for(conn, request[TENANT])
        return web.json_response({"endpoints": [endpoint_json(row) for row in rows]})

    async def _endpoint(self, request: web.Request) -> EndpointRow:
        endpoint_id = _id(request, "endpoint_id")
        async with self.db.read() as conn:
            row = await endpoints.get(conn, request[TENANT], endpoint_id)
        if row is None:
            raise NotFoundError("webhook endpoint", endpoint_id)
        return row

    async def get(self, request: web.Request) -> web.Response:
        """GET .../webhooks/endpoints/{endpoint_id}."""
        return web.json_response(endpoint_json(await self._endpoint(request)))

    async def patch(self, request: web.Request) -> web.Response:
        """PATCH .../webhooks/endpoints/{endpoint_id}: url, event_types, description, enabled."""
        try:
            body = EndpointPatch.model_validate(await read_object(request))
        except ValidationError as error:
            raise invalid(error) from error
        changes = body.model_dump(exclude_unset=True)
        if any(changes.get(name, "") is None for name in _REQUIRED):
            raise invalid_null()
        if "url" in changes:
            changes["url"] = self._url(changes["url"])
        if "enabled" in changes:
            changes["disabled_reason"] = None if changes["enabled"] else DISABLED_BY_USER
        row, now = await self._endpoint(request), self.now()
        await self.db.write(lambda conn: endpoints.update(conn, row, now, **changes))
        if row.enabled:
            self._nudge()
        return web.json_response(endpoint_json(row))

    async def delete(self, request: web.Request) -> web.Response:
        """DELETE .../webhooks/endpoints/{endpoint_id}: the endpoint and its delivery log."""
        row = await self._endpoint(request)
        await self.db.write(lambda conn: endpoints.delete(conn, row.endpoint_id))
        return web.Response(status=204)

    async def rotate(self, request: web.Request) -> web.Response:
        """POST .../{endpoint_id}/rotate-secret: a new secret; the old one signs for 24 h."""
        row, now = await self._endpoint(request), self.now()
        await self.db.write(lambda conn: endpoints.rotate(conn, row, now))
        return web.json_response({**endpoint_json(row), "secret": row.secret}, headers=NO_STORE)

    async def deliveries(self, request: web.Request) -> web.Response:
        """GET .../{endpoint_id}/deliveries: the newest deliveries and their attempts."""
        row = await self._endpoint(request)
        async with self.db.read() as conn:
            found = await outbox.for_endpoint(conn, row.endpoint_id, MAX_DELIVERIES)
        views = [delivery_json(delivery, attempts) for delivery, attempts in found]
        return web.json_response({"deliveries": views})

    async def test(self, request: web.Request) -> web.Response:
        """POST .../{endpoint_id}/test: queue a ``webhook.test`` event for this endpoint."""
        row, now = await self._endpoint(request), self.now()
        data = {"endpoint_id": row.endpoint_id, "message": "test event from lockhub"}
        made = await self.db.write(lambda conn: outbox.enqueue_to(conn, row, TEST_EVENT, data, now))
        self._nudge()
        return web.json_response(delivery_json(made), status=202)

    async def retry(self, request: web.Request) -> web.Response:
        """POST .../webhooks/deliveries/{delivery_id}/retry: one more attempt, now."""
        delivery_id, tenant, now = _id(request, "delivery_id"), request[TENANT], self.now()

        async def work(conn: Any) -> DeliveryRow:
            found = await outbox.get(conn, tenant, delivery_id)
            if found is None:
                raise NotFoundError("webhook delivery", delivery_id)
            return await outbox.retry(conn, found, now)

        made = await self.db.write(work)
        self._nudge()
        return web.json_response(delivery_json(made), status=202)


def invalid_null() -> web.HTTPBadRequest:
    """A 400 for a PATCH that sets a required field to null."""
    return bad_request("body", f"{', '.join(_REQUIRED)} cannot be null")


def add_webhook_routes(
    app: web.Application,
    db: Database,
    *,
    now: Callable[[], datetime] = utc_now,
    wake: Callable[[], None] | None = None,
    allow_http: bool = False,
) -> None:
    """Serve the webhook routes on ``app``; ``allow_http`` admits plain-http endpoint URLs."""
    api = WebhooksApi(db, now, wake, allow_http)
    one = ENDPOINTS + "/{endpoint_id}"
    router = app.router
    router.add_post(ENDPOINTS, api.create)
    router.add_get(ENDPOINTS, api.list, allow_head=False)
    router.add_get(one, api.get, allow_head=False)
    router.add_patch(one, api.patch)
    router.add_delete(one, api.delete)
    router.add_post(one + "/rotate-secret", api.rotate)
    router.add_get(one + "/deliveries", api.deliveries, allow_head=False)
    router.add_post(one + "/test", api.test)
    router.add_post("/v1/{tenant}/webhooks/deliveries/{delivery_id}/retry", api.retry)
