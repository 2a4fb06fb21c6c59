"""The cloud's REST API (DESIGN.md section 5): access windows, tasks, health, the spec."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import version

import structlog
from aiohttp import web
from pydantic import ValidationError

from cloud_sync.carriers.service import Carriers
from cloud_sync.protocol.fields import IDENT_PATTERN
from cloud_sync.service import CloudService, Outgoing
from cloud_sync.store.engine import Database

from .billing import add_billing_routes
from .carriers import add_carrier_routes
from .documents import add_document_routes
from .http import (
    MAX_BODY,
    TENANT,
    authenticate,
    bad_request,
    invalid,
    json_errors,
    not_found,
    read_object,
)
from .models import WindowRequest, task_json, window_json
from .ratelimit import KeyRateLimiter
from .webhooks import add_webhook_routes

log = structlog.get_logger(__name__)

Publish = Callable[[list[Outgoing]], None]
SPEC_RESOURCE = "openapi.json"
_IDENT = re.compile(IDENT_PATTERN)
# The code is in this response only: no cache, proxy or browser may keep a copy.
NO_STORE = {"Cache-Control": "no-store"}


def _ident(request: web.Request, name: str) -> str:
    """A path id; an id that cannot exist is a 404 without asking the store."""
    value = request.match_info[name]
    if not _IDENT.match(value):
        raise not_found()
    return value


@dataclass
class CloudApi:
    """Request handlers over the domain layer."""

    service: CloudService
    publish: Publish
    ready: Callable[[], dict[str, bool]]
    spec: bytes

    def _send(self, outgoing: list[Outgoing]) -> None:
        """Hand commands to the broker; a failure leaves them to the hub's next resync."""
        try:
            self.publish(outgoing)
        except Exception:
            # The change is committed and its answer (maybe a code shown once) must reach the
            # caller; the store holds the desired state, which a hub's hello resyncs.
            log.exception("api.publish_failed", messages=len(outgoing))

    async def create_window(self, request: web.Request) -> web.Response:
        """POST /v1/{tenant}/locks/access-windows: the code is in this answer only."""
        try:
            body = WindowRequest.model_validate(await read_object(request))
        except ValidationError as error:
            raise invalid(error) from error
        courier = None if body.courier is None else body.courier.model_dump()
        view, code, outgoing = await self.service.create_window(
            request[TENANT], body.task_id, hub_id=body.hub_id, lock_id=body.lock_id,
            starts_at=body.starts_at, ends_at=body.ends_at, max_uses=body.max_uses,
            enforcement=body.enforcement, courier=courier, carrier_job_id=body.carrier_job_id,
        )  # fmt: skip
        self._send(outgoing)
        answer = {**window_json(view), "code": code}
        location = f"{request.path}/{view.window_id}"
        headers = {**NO_STORE, "Location": location}
        return web.json_response(answer, status=201, headers=headers)

    async def revoke_window(self, request: web.Request) -> web.Response:
        """DELETE /v1/{tenant}/locks/access-windows/{window_id}: revoke (again is harmless)."""
        view, outgoing = await self.service.revoke_window(
            request[TENANT], _ident(request, "window_id")
        )
        self._send(outgoing)
        return web.json_response(window_json(view))

    async def get_window(self, request: web.Request) -> web.Response:
        """GET /v1/{tenant}/locks/access-windows/{window_id}: the window and its sync state."""
        view = await self.service.get_window(request[TENANT], _ident(request, "window_id"))
        return web.json_response(window_json(view))

    async def list_windows(self, request: web.Request) -> web.Response:
        """GET /v1/{tenant}/locks/access-windows[?task_id=]: the tenant's windows."""
        unknown = set(request.query) - {"task_id"}
        if unknown:
            raise bad_request(sorted(unknown)[0], "unknown query parameter")
        task_id = request.query.getall("task_id", [])
        if len(task_id) > 1 or (task_id and not _IDENT.match(task_id[0])):
            raise bad_request("task_id", "must be one task id")
        views = await self.service.list_windows(request[TENANT], task_id[0] if task_id else None)
        return web.json_response({"windows": [window_json(view) for view in views]})

    async def complete_task(self, request: web.Request) -> web.Response:
        """POST /v1/{tenant}/tasks/{task_id}/complete: revoke its windows on every hub."""
        view, outgoing = await self.service.complete_task(
            request[TENANT], _ident(request, "task_id")
        )
        self._send(outgoing)
        return web.json_response(task_json(view))

    async def get_task(self, request: web.Request) -> web.Response:
        """GET /v1/{tenant}/tasks/{task_id}: status, PoD and windows."""
        view = await self.service.get_task(request[TENANT], _ident(request, "task_id"))
        return web.json_response(task_json(view))

    async def healthz(self, _: web.Request) -> web.Response:
        """GET /healthz: the process serves requests."""
        return web.json_response({"status": "ok", "version": version("lockhub")})

    async def readyz(self, _: web.Request) -> web.Response:
        """GET /readyz: every part is up (store, broker link, ...) as ``ready()`` says."""
        checks = self.ready()
        status = 200 if all(checks.values()) else 503
        return web.json_response({"ready": status == 200, "checks": checks}, status=status)

    async def openapi(self, _: web.Request) -> web.Response:
        """GET /v1/openapi.json: the OpenAPI 3.1 document of this API."""
        return web.Response(body=self.spec, content_type="application/json")


def load_spec() -> bytes:
    """The OpenAPI document shipped with the package."""
    return resources.files("cloud_sync").joinpath(SPEC_RESOURCE).read_bytes()


def build_cloud_app(
    service: CloudService,
    publish: Publish,
    *,
    ready: Callable[[], dict[str, bool]],
    limiter: KeyRateLimiter | None = None,
    carriers: Carriers | None = None,
    database: Database | None = None,
    wake: Callable[[], None] | None = None,
) -> web.Application:
    """The aiohttp application of the cloud's REST API.

    ``limiter``: per-key rate limits; ``carriers``: the carrier desk's routes (absent when no
    key ring is configured); ``database``: billing export and webhook endpoint routes, whose
    new deliveries ``wake`` the delivery worker.
    """
    app = web.Application(
        middlewares=[json_errors, authenticate(service, limiter)], client_max_size=MAX_BODY
    )
    api = CloudApi(service, publish, ready, load_spec())
    windows = "/v1/{tenant}/locks/access-windows"
    router = app.router
    router.add_post(windows, api.create_window)
    router.add_get(windows, api.list_windows, allow_head=False)
    router.add_get(windows + "/{window_id}", api.get_window, allow_head=False)
    router.add_delete(windows + "/{window_id}", api.revoke_window)
    router.add_post("/v1/{tenant}/tasks/{task_id}/complete", api.complete_task)
    router.add_get("/v1/{tenant}/tasks/{task_id}", api.get_task, allow_head=False)
    router.add_get("/healthz", api.healthz, allow_head=False)
    router.add_get("/readyz", api.readyz, allow_head=False)
    router.add_get("/v1/openapi.json", api.openapi, allow_head=False)
    if carriers is not None:
        add_carrier_routes(app, carriers)
        add_document_routes(app, carriers)
    if database is not None:
        add_billing_routes(app, database, wake=wake)
        add_webhook_routes(app, database, wake=wake)
    return app
