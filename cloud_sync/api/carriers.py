"""Carrier routes: partners, breakers, rate shopping, offers and carrier jobs.

Credentials are write-only: accepted on POST and PATCH, never in an answer. A carrier's own
failure is not the caller's: it answers 502 (504 for a timeout, 503 with Retry-After for an
open breaker), a carrier's refusal 422.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from cloud_sync.carriers.errors import (
    BreakerOpenError,
    CarrierError,
    CarrierRejectedError,
    CarrierTimeoutError,
)
from cloud_sync.carriers.service import Carriers
from cloud_sync.carriers.uber_codec import PROVIDER_CODE as UBER_DIRECT
from cloud_sync.carriers.uber_webhooks import DeliveryUpdate, webhook_handler
from cloud_sync.carriers.views import (
    PartnerIn,
    PartnerPatch,
    RateShopIn,
    breaker_json,
    job_json,
    offer_json,
    partner_json,
    shop_json,
)
from cloud_sync.protocol.fields import IDENT_PATTERN

from .http import TENANT, bad_request, invalid, not_found, problem, read_object

log = structlog.get_logger(__name__)
ModelT = TypeVar("ModelT", bound=BaseModel)
Handler = Callable[["CarrierApi", web.Request], Awaitable[web.StreamResponse]]

_IDENT = re.compile(IDENT_PATTERN)
# Printable ASCII without spaces, as long as our idents: what clients put in the header.
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
# A delivery is booked days ahead, not centuries: far dates overflow the connectors' ETA
# arithmetic, which would count as the carriers failing and open their breakers.
MAX_READY_AHEAD = timedelta(days=366)
# Breakers cool down in seconds; a client told to wait 1 s at least does not spin.
MIN_RETRY_AFTER_S = 1


def _ident(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _IDENT.match(value):
        raise not_found()
    return value


async def _body(request: web.Request, model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate(await read_object(request))
    except ValidationError as error:
        raise invalid(error) from error


def _carrier_problem(error: CarrierError, now: datetime) -> web.Response:
    if isinstance(error, BreakerOpenError):
        response = problem(503, "carrier_unavailable", reason=error.kind)
        wait = MIN_RETRY_AFTER_S
        if error.retry_at is not None:
            wait = max(MIN_RETRY_AFTER_S, round((error.retry_at - now).total_seconds()))
        response.headers["Retry-After"] = str(wait)
        return response
    if isinstance(error, CarrierRejectedError):
        return problem(422, "carrier_rejected", reason=error.kind, detail=str(error)[:200])
    status = 504 if isinstance(error, CarrierTimeoutError) else 502
    return problem(status, "carrier_failed", reason=error.kind)


def _carrier_errors(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapped(self: CarrierApi, request: web.Request) -> web.StreamResponse:
        try:
            return await handler(self, request)
        except CarrierError as error:
            log.warning("api.carrier_error", path=request.path, kind=error.kind)
            return _carrier_problem(error, self.now())

    return wrapped


@dataclass
class CarrierApi:
    """Handlers over the carrier desk."""

    carriers: Carriers
    now: Callable[[], datetime]

    async def create_partner(self, request: web.Request) -> web.Response:
        """POST /v1/{tenant}/carrier-partners."""
        body = await _body(request, PartnerIn)
        row = await self.carriers.registry.create(
            request[TENANT], body.provider_code, body.name, credentials=body.credentials,
            settings=body.settings, status=body.status,
        )  # fmt: skip
        headers = {"Location": f"{request.path}/{row.partner_id}"}
        return web.json_response(partner_json(row), status=201, headers=headers)

    async def list_partners(self, request: web.Request) -> web.Response:
        """GET /v1/{tenant}/carrier-partners."""
        rows = await self.carriers.registry.list(request[TENANT])
        return web.json_response({"partners": [partner_json(row) for row in rows]})

    async def get_partner(self, request: web.Request) -> web.Response:
        """GET /v1/{tenant}/carrier-partners/{partner_id}."""
        row = await self.carriers.registry.get(request[TENANT], _ident(request, "partner_id"))
        return web.json_response(partner_json(row))

    async def patch_partner(self, request: web.Request) -> web.Response:
        """PATCH /v1/{tenant}/carrier-partners/{partner_id}: change what is given."""
        partner_id = _ident(request, "partner_id")
        body = await _body(request, PartnerPatch)
        if not body.model_fields_set:
            raise bad_request("body", "give at least one field to change")
        row = await self.carriers.registry.update(
            request[TENANT], partner_id, name=body.name, credentials=body.credentials,
            settings=body.settings, status=body.status,
        )  # fmt: skip
        return web.json_response(partner_json(row))

    async def delete_partner(self, request: web.Request) -> web.Response:
        """DELETE /v1/{tenant}/carrier-partners/{partner_id}: retire it, erase credentials."""
        await self.carriers.registry.delete(request[TENANT], _ident(request, "partner_id"))
        return web.Response(status=204)

    async def get_breaker(self, request: web.Request) -> web.Response:
        """GET /v1/{tenant}/carrier-partners/{partner_id}/breaker."""
        partner_id = _ident(request, "partner_id")
        snap = await self.carriers.registry.breaker(request[TENANT], partner_id)
        return web.json_response(breaker_json(partner_id, snap))

    async def rate_shop(self, request: web.Request) -> web.Response:
        """POST /v1/{tenant}/tasks/{task_id}/rate-shop: ranked offers and who was skipped."""
        task_id = _ident(request, "task_id")
        body = await _body(request, RateShopIn)
        if body.ready_at > self.now() + MAX_READY_AHEAD:
            raise bad_request("ready_at", "must be within a year from now")
        result = await self.carriers.shop.shop(body.value(request[TENANT], task_id))
        return web.json_response(shop_json(result, self.now()))

    async def get_offer(self, request: web.Request) -> web.Response:
        """GET /v1/{tenant}/offers/{offer_id}."""
        row = await self.carriers.shop.get_offer(request[TENANT], _ident(request, "offer_id"))
        return web.json_response(offer_json(row, self.now()))

    @_carrier_errors
    async def accept_offer(self, request: web.Request) -> web.Response:
        """POST /v1/{tenant}/offers/{offer_id}/accept: book it (Idempotency-Key honoured)."""
        offer_id = _ident(request, "offer_id")
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
            raise bad_request("Idempotency-Key", "must be 1-128 printable ASCII characters")
        job, created = await self.carriers.jobs.accept(request[TENANT], offer_id, key)
        headers = {"Location": f"/v1/{request[TENANT]}/carrier-jobs/{job.job_id}"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return web.json_response(job_json(job), status=201 if created else 200, headers=headers)

    async def get_job(self, request: web.Request) -> web.Response:
        """GET /v1/{tenant}/carrier-jobs/{job_id}."""
        row = await self.carriers.jobs.get(request[TENANT], _ident(request, "job_id"))
        return web.json_response(job_json(row))

    async def uber_direct_webhook(self, request: web.Request) -> web.StreamResponse:
        """POST /v1/webhooks/uber-direct/{partner_id}: Uber's signed delivery news."""
        partner_id = _ident(request, "partner_id")
        registry, jobs = self.carriers.registry, self.carriers.jobs

        async def keys() -> Sequence[bytes]:
            return await registry.webhook_keys(partner_id, UBER_DIRECT)

        async def on_update(update: DeliveryUpdate) -> None:
            tenant = await registry.tenant_of(partner_id)
            if tenant is not None:
                await jobs.apply_update(tenant, UBER_DIRECT, update.carrier_job_id, update.status)

        return await webhook_handler(keys, on_update)(request)

    @_carrier_errors
    async def refresh_job(self, request: web.Request) -> web.Response:
        """POST /v1/{tenant}/carrier-jobs/{job_id}/refresh: ask the carrier."""
        row = await self.carriers.jobs.refresh(request[TENANT], _ident(request, "job_id"))
        return web.json_response(job_json(row))

    @_carrier_errors
    async def cancel_job(self, request: web.Request) -> web.Response:
        """POST /v1/{tenant}/carrier-jobs/{job_id}/cancel."""
        row = await self.carriers.jobs.cancel(request[TENANT], _ident(request, "job_id"))
        return web.json_response(job_json(row))


def _utc_now() -> datetime:
    return datetime.now(UTC)


def add_carrier_routes(
    app: web.Application, carriers: Carriers, *, now: Callable[[], datetime] = _utc_now
) -> None:
    """Add the carrier routes to the cloud API (its middlewares authenticate the tenant)."""
    api = CarrierApi(carriers, now)
    partners = "/v1/{tenant}/carrier-partners"
    partner = partners + "/{partner_id}"
    jobs = "/v1/{tenant}/carrier-jobs/{job_id}"
    routes: list[tuple[str, str, Any]] = [
        ("POST", partners, api.create_partner),
        ("GET", partners, api.list_partners),
        ("GET", partner, api.get_partner),
        ("PATCH", partner, api.patch_partner),
        ("DELETE", partner, api.delete_partner),
        ("GET", partner + "/breaker", api.get_breaker),
        ("POST", "/v1/{tenant}/tasks/{task_id}/rate-shop", api.rate_shop),
        ("GET", "/v1/{tenant}/offers/{offer_id}", api.get_offer),
        ("POST", "/v1/{tenant}/offers/{offer_id}/accept", api.accept_offer),
        ("GET", jobs, api.get_job),
        ("POST", jobs + "/refresh", api.refresh_job),
        ("POST", jobs + "/cancel", api.cancel_job),
        # Carriers call this one: no tenant key; the signature over the body is the check.
        ("POST", "/v1/webhooks/uber-direct/{partner_id}", api.uber_direct_webhook),
    ]
    for method, path, handler in routes:
        if method == "GET":
            app.router.add_get(path, handler, allow_head=False)
        else:
            app.router.add_route(method, path, handler)
