"""The API's boundary: JSON errors, our exceptions translated, bearer keys, strict bodies."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from pydantic import ValidationError

from cloud_sync.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    StoreUnavailableError,
    UnknownHubError,
)
from cloud_sync.protocol import jsoncodec
from cloud_sync.protocol.errors import MalformedError
from cloud_sync.service import CloudService
from gateway.httpbody import read_body

from .ratelimit import KeyRateLimiter

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A window request is well under 2 KiB (idents are <= 128 characters, text <= 512): 64 KiB
# leaves room for any future field and keeps a flood of large bodies cheap to refuse.
MAX_BODY = 64 * 1024
# A busy or unreachable database usually recovers within seconds (a failover, a lock).
RETRY_AFTER_SECONDS = 5
# Header bytes that are not UTF-8 arrive as surrogate escapes; a key is ASCII anyway.
_BEARER = re.compile(r"Bearer ([\x21-\x7e]+)")
# The tenant a key was authenticated for, set by ``authenticate`` for the handlers.
TENANT = web.RequestKey("tenant", str)


def problem(status: int, error: str, **extra: Any) -> web.Response:
    """A JSON error response."""
    return web.json_response({"error": error, **extra}, status=status)


def bad_request(field: str, detail: str, **extra: Any) -> web.HTTPBadRequest:
    """A JSON 400 naming the field at fault, to raise."""
    body = {"error": "invalid_request", "field": field, "detail": detail, **extra}
    return web.HTTPBadRequest(text=jsoncodec.dumps(body).decode(), content_type="application/json")


def not_found() -> web.HTTPNotFound:
    """The one 404 for anything the caller may not see, whether it exists or not."""
    return web.HTTPNotFound(text='{"error":"not_found"}', content_type="application/json")


def _from_http(exc: web.HTTPException) -> web.StreamResponse:
    response = problem(exc.status, exc.reason.lower().replace(" ", "_"))
    for name in ("Allow", "WWW-Authenticate", "Retry-After"):
        if name in exc.headers:  # a 405 must say which methods the resource takes
            response.headers[name] = exc.headers[name]
    return response


def response_for(exc: Exception) -> web.StreamResponse | None:
    """Our exceptions as the HTTP answer the caller should act on; None if not ours."""
    if isinstance(exc, UnknownHubError):
        # The window names the hub in its body: the resource posted to exists, the reference
        # in the body is what is wrong.
        return problem(400, "invalid_request", field="hub_id", detail="no such hub")
    if isinstance(exc, NotFoundError):
        return problem(404, "not_found")
    if isinstance(exc, InvalidRequestError):
        return problem(400, "invalid_request", field=exc.field, detail=exc.problem)
    if isinstance(exc, ConflictError):
        return problem(409, "conflict", detail=str(exc))
    if isinstance(exc, StoreUnavailableError):
        log.warning("api.store_unavailable", error=str(exc))
        response = problem(503, "unavailable")
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return None


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error as JSON; never leak a traceback, a key or a code."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":  # ours, already JSON
            raise
        return _from_http(exc)
    except Exception as exc:  # the last resort: a JSON 500, the details in the log
        answer = response_for(exc)
        if answer is not None:
            return answer
        log.exception("api.failed", method=request.method, path=request.path)
        return problem(500, "internal_error")


def authenticate(
    service: CloudService, limiter: KeyRateLimiter | None = None
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware: a tenant path needs that tenant's bearer key (any other tenant's: 404);
    each key gets ``limiter``'s rate (over it: 429 with Retry-After)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        tenant = request.match_info.get("tenant")
        if tenant is None:  # not a tenant path (health, the spec) or no route at all
            return await handler(request)
        header = request.headers.get("Authorization", "")
        match = _BEARER.fullmatch(header)
        found = None if match is None else await service.authenticate(match[1])
        if found is None:
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer realm="lockhub"'})
        if found != tenant:
            raise not_found()
        if limiter is not None:
            # The key's public prefix names it; the secret never becomes a dict key.
            wait = limiter.take(match[1].rsplit("_", 1)[0] if match else "")
            if wait is not None:
                log.info("api.rate_limited", tenant=found)
                response = problem(429, "rate_limited", retry_after=wait)
                response.headers["Retry-After"] = str(wait)
                return response
        request[TENANT] = found
        return await handler(request)

    return guard


async def read_object(request: web.Request, limit: int = MAX_BODY) -> dict[str, Any]:
    """The body as a JSON object (strict: bounded depth, no duplicate keys), or a 400."""
    try:
        # The wire's strict parser: bounded depth, no duplicate keys, no lone surrogates.
        value = jsoncodec.loads(await read_body(request, limit))
    except MalformedError as exc:
        raise bad_request("body", "body is not JSON") from exc
    if not isinstance(value, dict):
        raise bad_request("body", "body must be a JSON object")
    return value


def invalid(error: ValidationError) -> web.HTTPBadRequest:
    """A 400 naming the first field at fault and listing every problem."""
    found = error.errors(include_url=False, include_input=False, include_context=False)
    problems = [
        {"field": ".".join(str(part) for part in item["loc"]) or "body", "detail": item["msg"]}
        for item in found
    ]
    return bad_request(problems[0]["field"], problems[0]["detail"], errors=problems)
