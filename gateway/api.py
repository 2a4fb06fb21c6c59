"""The hub's local HTTP API (DESIGN.md section 8): unlock, health, readiness, metrics, admin.

``GET /`` is the read-only installer status page and ``GET /v1/status`` its data
(``gateway.statuspage``): no token, and nothing sensitive in either.

Couriers' devices (a keypad box, an app on the site network, a QR reader) call
``POST /v1/locks/{lock_id}/unlock``. Every kind of wrong (an unknown lock included) gets the
same 403; a lockout gets 423 with ``Retry-After``; an unreachable lock 503 (the attempt is
still recorded). Admin endpoints
need ``Authorization: Bearer <token>`` (the token file named in ``[api] admin_token_file``).
Vendor bridges on the LAN post lock state changes to ``POST /v1/callbacks/{lock_id}?secret=...``;
the lock's driver checks the per-lock secret.
"""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from cloud_sync.protocol import jsoncodec
from cloud_sync.protocol.errors import MalformedError

from . import __version__
from .access.engine import (
    AccessEngine,
    Denied,
    LockedOut,
    Unavailable,
    UnknownLock,
    Unlocked,
    UnlockResult,
)
from .access.intake import CommandIntake
from .httpbody import read_body
from .locks.callbacks import CALLBACK_SECRET_KEY, CallbackRegistry
from .locks.driver import LockError
from .metrics import Registry
from .statuspage import STATUS_ROUTE, EventLog, status_data, status_page

if TYPE_CHECKING:
    from .sync.link import HubLink

log = structlog.get_logger(__name__)

# An unlock body holds one code (<= 10 digits) or one token (<= 2 KiB): 4 KiB is plenty and
# keeps a flood of large bodies cheap to refuse.
MAX_UNLOCK_BODY = 4 * 1024
# Admin bodies carry signed command batches (the protocol caps a batch at 256 KiB).
MAX_ADMIN_BODY = 256 * 1024
# A bridge callback is one JSON state report of a few hundred bytes: 8 KiB is plenty.
MAX_CALLBACK_BODY = 8 * 1024
CALLBACK_ROUTE = "/v1/callbacks/{lock_id}"
# Bridges cannot set headers, so the URL's ``secret`` reaches the driver's handler under this
# key among the headers; a header of that name sent by the caller is dropped first.
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ApiParts:
    """What the API serves from."""

    engine: AccessEngine
    intake: CommandIntake
    metrics: Registry
    admin_token: str | None
    ready: Callable[[], dict[str, bool]]
    # Routes bridge callbacks to lock drivers; None: every callback is 404.
    callbacks: CallbackRegistry | None = None
    # The MQTT link and the recent lock events, for the status page (None: not shown).
    link: HubLink | None = None
    activity: EventLog | None = None


def problem(status: int, error: str, **extra: Any) -> web.Response:
    """A JSON error response."""
    return web.json_response({"error": error, **extra}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every HTTP error as JSON; never leak a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        response = problem(exc.status, exc.reason.lower().replace(" ", "_"))
        if "Allow" in exc.headers:  # a 405 must say which methods the resource takes
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:  # the last resort: a JSON 500, the details in the log
        log.exception("api.failed", path=request.path)
        return problem(500, "internal_error")


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object, or an HTTPException for the client."""
    raw = await read_body(request, limit)
    try:
        # The wire's strict parser: bounded depth, no duplicate keys, no lone surrogates.
        value = jsoncodec.loads(raw)
    except MalformedError as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "bad_request", "detail": "body is not JSON"}),
            content_type="application/json",
        ) from exc
    if not isinstance(value, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "bad_request", "detail": "body must be a JSON object"}),
            content_type="application/json",
        )
    return value


def _credential(body: dict[str, Any]) -> tuple[str | None, str | None]:
    code, token = body.get("code"), body.get("token")
    valid = (isinstance(code, str)) != (isinstance(token, str)) and set(body) <= {"code", "token"}
    if not valid or (code is not None and token is not None):
        raise web.HTTPBadRequest(
            text=json.dumps(
                {"error": "bad_request", "detail": 'send exactly one of "code" or "token"'}
            ),
            content_type="application/json",
        )
    return code, token


def unlock_response(result: UnlockResult) -> web.Response:
    """Map an engine decision onto the HTTP answer of DESIGN.md section 8."""
    if isinstance(result, Unlocked):
        body = {"result": "unlocked", "window_id": result.window_id, "pod_id": result.pod_id}
        return web.json_response(body)
    if isinstance(result, Denied | UnknownLock):
        # A lock id that is not on this hub gets the same answer as any other wrong, so the
        # API does not tell which locks exist.
        return problem(403, "denied")
    if isinstance(result, LockedOut):
        response = problem(423, "locked_out")
        response.headers["Retry-After"] = str(max(1, math.ceil(result.retry_after)))
        return response
    assert isinstance(result, Unavailable)  # noqa: S101 - the union is exhausted
    return problem(503, "lock_unavailable")


def source_of(request: web.Request) -> str:
    """Who is asking, for per-source lockouts: the peer address."""
    return request.remote or "unknown"


class LocalApi:
    """Request handlers over the hub's parts."""

    def __init__(self, parts: ApiParts) -> None:
        self.parts = parts

    async def unlock(self, request: web.Request) -> web.Response:
        """POST /v1/locks/{lock_id}/unlock."""
        code, token = _credential(await read_json(request, MAX_UNLOCK_BODY))
        lock_id = request.match_info["lock_id"]
        engine = self.parts.engine
        result = await engine.unlock(lock_id, source=source_of(request), code=code, token=token)
        if isinstance(result, UnknownLock):
            # Counted as the denial it looks like; no record and no lockout row, which any
            # caller could otherwise create for ids of their choosing.
            engine.attempts["denied"] = engine.attempts.get("denied", 0) + 1
            log.info("access.denied", lock_id=lock_id[:64], reason="unknown_lock")
        return unlock_response(result)

    async def healthz(self, _: web.Request) -> web.Response:
        """GET /healthz: the process serves requests."""
        return web.json_response({"status": "ok", "version": __version__})

    async def readyz(self, _: web.Request) -> web.Response:
        """GET /readyz: every part is up (store open, engine started, locks attached)."""
        checks = self.parts.ready()
        status = 200 if all(checks.values()) else 503
        return web.json_response({"ready": status == 200, "checks": checks}, status=status)

    async def metrics(self, _: web.Request) -> web.Response:
        """GET /metrics: Prometheus text format."""
        await refresh_outbox_depth(self.parts)
        return web.Response(
            text=self.parts.metrics.render(), content_type="text/plain", charset="utf-8"
        )


def callback_receiver(registry_of: Callable[[], CallbackRegistry | None]) -> Handler:
    """POST /v1/callbacks/{lock_id}?secret=...: hand a bridge's raw body to the lock's driver.

    404 when no driver takes callbacks for the lock, 400 when the driver rejects the body or
    the secret (the same answer for both), 204 when taken. Bodies and secrets are never logged.
    """

    async def receive(request: web.Request) -> web.StreamResponse:
        lock_id = request.match_info["lock_id"]
        registry = registry_of()
        handler = registry.handler(lock_id) if registry is not None else None
        if handler is None:
            return problem(404, "unknown_lock")
        raw = await read_body(request, MAX_CALLBACK_BODY)
        try:
            await handler(raw, callback_meta(request))
        except (LockError, ValueError) as exc:
            log.info("api.callback_rejected", lock_id=lock_id, error=type(exc).__name__)
            return problem(400, "bad_request")
        return web.Response(status=204)

    return receive


def callback_meta(request: web.Request) -> dict[str, str]:
    """The request's headers (lower-case names) with the URL's secret under its own key."""
    meta = {name.lower(): value for name, value in request.headers.items()}
    meta.pop(CALLBACK_SECRET_KEY, None)
    secret = request.query.get("secret")
    if secret is not None:
        meta[CALLBACK_SECRET_KEY] = secret
    return meta


async def refresh_outbox_depth(parts: ApiParts) -> None:
    """Read the outbox depth for the next metrics render (gauges are synchronous)."""
    parts.engine.outbox_depth = await parts.engine.store.outbox_depth()


def require_admin(parts: ApiParts) -> Callable[[Handler], Handler]:
    """Wrap a handler so that it needs the admin bearer token."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            expected = parts.admin_token
            given = request.headers.get("Authorization", "")
            if expected is None:
                return problem(404, "not_found")
            # Header bytes that are not UTF-8 arrive as surrogate escapes: encode them back.
            presented = given.encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(presented, f"Bearer {expected}".encode()):
                response = problem(401, "unauthorized")
                response.headers["WWW-Authenticate"] = 'Bearer realm="lockhub"'
                return response
            return await handler(request)

        return guarded

    return wrap


def build_app(parts: ApiParts) -> web.Application:
    """The aiohttp application of the local API."""
    from .admin import AdminApi  # noqa: PLC0415 - keeps the courier path's imports small

    app = web.Application(middlewares=[json_errors], client_max_size=MAX_ADMIN_BODY)
    api, admin, guard = LocalApi(parts), AdminApi(parts), require_admin(parts)
    app.router.add_post("/v1/locks/{lock_id}/unlock", api.unlock)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/readyz", api.readyz)
    app.router.add_get("/metrics", api.metrics)
    app.router.add_get("/", status_page)
    app.router.add_get(STATUS_ROUTE, status_data(parts))
    app.router.add_post(CALLBACK_ROUTE, callback_receiver(lambda: parts.callbacks))
    app.router.add_get("/v1/admin/windows", guard(admin.windows))
    app.router.add_get("/v1/admin/locks", guard(admin.locks))
    app.router.add_get("/v1/admin/outbox", guard(admin.outbox))
    app.router.add_get("/v1/admin/lockouts", guard(admin.lockouts))
    app.router.add_post("/v1/admin/commands", guard(admin.commands))
    return app
