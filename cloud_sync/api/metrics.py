"""``GET /metrics`` on the cloud's API, and a middleware counting requests by route and status."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from cloud_sync.metrics import CloudMetrics

from .http import Handler

METRICS_ROUTE = "/metrics"
# Requests no route matched share one label value: a scanner's random paths must not each
# become a series.
UNMATCHED = "unmatched"


def route_of(request: web.Request) -> str:
    """The route's template (``/v1/{tenant}/tasks/{task_id}``), never the concrete path."""
    resource = request.match_info.route.resource
    return UNMATCHED if resource is None else resource.canonical


def count_requests(metrics: CloudMetrics) -> Middleware:
    """Middleware: count every answer, JSON errors and raised HTTP errors included."""

    @web.middleware
    async def counted(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            metrics.request(route_of(request), request.method, exc.status)
            raise
        except Exception:
            metrics.request(route_of(request), request.method, 500)
            raise
        metrics.request(route_of(request), request.method, response.status)
        return response

    return counted


def add_metrics_route(app: web.Application, metrics: CloudMetrics) -> None:
    """Serve ``metrics`` at ``/metrics`` and count requests (call before the app starts)."""

    async def scrape(_: web.Request) -> web.Response:
        await metrics.refresh()
        return web.Response(text=metrics.render(), content_type="text/plain", charset="utf-8")

    # Outermost, so it sees the final status of what json_errors and authenticate answered.
    app.middlewares.insert(0, count_requests(metrics))
    app.router.add_get(METRICS_ROUTE, scrape, allow_head=False)
