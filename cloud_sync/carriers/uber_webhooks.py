"""Uber Direct webhooks in: verify the signature over the raw body, read the status update.

Uber signs each POST with the webhook's signing key: HMAC-SHA256 of the raw body, hex, in
``x-uber-signature`` (older integrations: ``x-postmates-signature``). Uber sends no timestamp
to bound replays; a replayed event only repeats a status we already hold, and ``event_id``
lets the caller drop duplicates. ``event.delivery_status`` and ``event.courier_update`` both
carry the whole delivery in ``data``, read with the same codec as GET delivery.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from cloud_sync.webhooks.errors import WebhookVerificationError
from cloud_sync.webhooks.verify import Scheme, verify

from . import uber_codec as codec
from .connector import JobStatus
from .uber_codec import PROVIDER_CODE, UnreadableAnswerError

log = structlog.get_logger(__name__)

SIGNATURE_HEADERS = ("x-uber-signature", "x-postmates-signature")
SCHEMES = tuple(Scheme(signature_header=name, encoding="hex") for name in SIGNATURE_HEADERS)
EVENT_KINDS = frozenset({"event.delivery_status", "event.courier_update"})
# Uber's events are a few kilobytes; a megabyte is a generous ceiling against a flood.
MAX_BODY_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """One webhook's news about a delivery, in our terms."""

    event_id: str | None
    kind: str
    carrier_job_id: str
    external_id: str | None
    status: JobStatus
    courier_lat: float | None = None
    courier_lng: float | None = None


def verify_uber(keys: Sequence[bytes], body: bytes, headers: Mapping[str, str]) -> None:
    """Return if one of ``keys`` signed ``body``; else raise WebhookVerificationError."""
    lowered = {name.lower() for name in headers}
    for scheme in SCHEMES:
        if scheme.signature_header in lowered:
            # Uber sends no timestamp: ``now`` is unused by a scheme without one.
            verify(scheme, keys, body, headers, now=datetime.now(UTC))
            return
    raise WebhookVerificationError("missing_header")


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _where(event: Mapping[str, Any], data: Mapping[str, Any]) -> Mapping[str, Any]:
    # courier_update puts the courier's position at the top; the delivery data has it too.
    for holder in (event, data.get("courier")):
        location = holder.get("location") if isinstance(holder, Mapping) else None
        if isinstance(location, Mapping):
            return location
    return {}


def parse_event(body: bytes) -> DeliveryUpdate:
    """Our DeliveryUpdate from a verified body; UnreadableAnswerError if it is not one."""
    try:
        event = json.loads(body)
    except ValueError as exc:
        raise UnreadableAnswerError(
            "uber_direct webhook is not JSON", provider_code=PROVIDER_CODE
        ) from exc
    if not isinstance(event, dict) or event.get("kind") not in EVENT_KINDS:
        raise UnreadableAnswerError(
            "uber_direct webhook of unknown kind", provider_code=PROVIDER_CODE
        )
    data = event.get("data")
    if not isinstance(data, dict):
        raise UnreadableAnswerError("uber_direct webhook without data", provider_code=PROVIDER_CODE)
    job = codec.read_job(data)
    location = _where(event, data)
    event_id = event.get("id")
    external_id = data.get("external_id")
    return DeliveryUpdate(
        event_id=event_id if isinstance(event_id, str) else None,
        kind=str(event["kind"]),
        carrier_job_id=job.carrier_job_id,
        external_id=external_id if isinstance(external_id, str) else None,
        status=codec.read_status(data),
        courier_lat=_float(location.get("lat")),
        courier_lng=_float(location.get("lng")),
    )


OnUpdate = Callable[[DeliveryUpdate], Awaitable[Any]]
Keys = Callable[[], Awaitable[Sequence[bytes]]]


def webhook_handler(
    keys: Keys, on_update: OnUpdate
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler: 401 unsigned, 400 unreadable, 200 after ``on_update``.

    ``keys`` returns the signing keys in force (several while one is being rotated).
    """

    async def handle(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            return web.json_response({"error": "too_large"}, status=413)
        body = await request.read()
        try:
            verify_uber(await keys(), body, request.headers)
        except WebhookVerificationError as exc:
            log.warning("uber_direct.webhook_refused", reason=exc.reason)
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            update = parse_event(body)
        except UnreadableAnswerError as exc:
            log.warning("uber_direct.webhook_unreadable", error=str(exc))
            return web.json_response({"error": "unreadable"}, status=400)
        await on_update(update)
        log.info(
            "uber_direct.webhook",
            kind=update.kind,
            delivery_id=update.carrier_job_id,
            status=update.status.status,
        )
        return web.json_response({"ok": True})

    return handle
