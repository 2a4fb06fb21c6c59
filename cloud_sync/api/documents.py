"""Shipping documents over the API: a job's label (PDF or ZPL) and manifests (CSV or PDF).

A label is the carrier's own when it returned one at booking in the format asked for,
otherwise ours (4x6, Code128 of the tracking number, QR of the job's URL). Manifests are
ours: one job's, or one carrier's for one day (``/v1/{tenant}/manifests``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import web

from cloud_sync.carriers.documents import (
    LabelData,
    ManifestData,
    ManifestLine,
    Party,
    render_label,
    render_manifest,
)
from cloud_sync.carriers.service import Carriers
from cloud_sync.protocol.fields import IDENT_PATTERN
from cloud_sync.store import carriers as q
from cloud_sync.store.carriers import JobRow

from .http import TENANT, bad_request, not_found, problem

_IDENT = re.compile(IDENT_PATTERN)
# A job still being booked has no tracking number yet: nothing to print.
UNPRINTABLE = {"booking"}
# The carrier-returned label formats we pass through as they are.
CARRIER_FORMATS = {"pdf": "application/pdf", "zpl": "application/zpl"}
LABEL_FORMATS = ("pdf", "zpl")
MANIFEST_FORMATS = ("csv", "pdf")
# Downloads, not pages: a browser saves them under a name that says what they are.
ATTACHMENT = 'attachment; filename="{name}"'


def _ident(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not _IDENT.match(value):
        raise not_found()
    return value


def _format(request: web.Request, allowed: tuple[str, ...]) -> str:
    fmt = request.query.get("format", allowed[0])
    if fmt not in allowed:
        raise bad_request("format", f"must be one of {', '.join(allowed)}")
    return fmt


def party(address: Mapping[str, Any]) -> Party:
    """A label party from a stored connector Address."""
    return Party(
        name=str(address.get("name") or ""),
        street=str(address.get("street") or ""),
        city=str(address.get("city") or ""),
        postcode=str(address.get("postcode") or ""),
        country=str(address.get("country") or ""),
        phone=str(address.get("phone") or ""),
    )


def _weight(job: JobRow) -> int:
    return sum(int(parcel.get("weight_g", 0)) for parcel in job.parcels)


def _line(job: JobRow) -> ManifestLine:
    return ManifestLine(
        task_id=job.task_id,
        carrier_job_id=job.carrier_job_id or job.job_id,
        tracking_number=job.tracking_number or "",
        service=job.service,
        recipient=party(job.dropoff),
        parcels=max(1, len(job.parcels)),
        weight_g=_weight(job),
    )


@dataclass
class DocumentApi:
    """Handlers over the carrier desk."""

    carriers: Carriers
    now: Callable[[], datetime]

    async def _printable(self, request: web.Request) -> JobRow:
        job = await self.carriers.jobs.get(request[TENANT], _ident(request, "job_id"))
        if job.status in UNPRINTABLE or not job.tracking_number:
            raise web.HTTPConflict(
                text='{"error":"conflict","detail":"the job is not booked yet"}',
                content_type="application/json",
            )
        return job

    async def label(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/{tenant}/carrier-jobs/{job_id}/label[?format=pdf|zpl]."""
        fmt = _format(request, LABEL_FORMATS)
        job = await self._printable(request)
        async with self.carriers.jobs.store.read() as conn:
            own = await q.get_label(conn, job.job_id)
        if own is not None and own[0] == fmt:
            body, content_type = own[1], CARRIER_FORMATS[fmt]
        else:
            job_url = f"{request.url.origin()}/v1/{job.tenant_id}/carrier-jobs/{job.job_id}"
            data = LabelData(
                tracking_number=job.tracking_number or "",
                job_url=job_url,
                task_id=job.task_id,
                provider_code=job.provider_code,
                service=job.service,
                weight_g=_weight(job),
                ship_date=job.created_at.date(),
                sender=party(job.pickup),
                recipient=party(job.dropoff),
                parcel_count=max(1, len(job.parcels)),
            )
            body, content_type = render_label(data, fmt)
        name = f"label-{job.tracking_number}.{fmt}"
        return _download(body, content_type, name)

    async def job_manifest(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/{tenant}/carrier-jobs/{job_id}/manifest[?format=csv|pdf]."""
        fmt = _format(request, MANIFEST_FORMATS)
        job = await self._printable(request)
        data = ManifestData(
            provider_code=job.provider_code,
            day=job.created_at.date(),
            generated_at=self.now(),
            shipper=party(job.pickup),
            lines=(_line(job),),
            job_id=job.job_id,
        )
        body, content_type = render_manifest(data, fmt)
        return _download(body, content_type, f"manifest-{job.job_id}.{fmt}")

    async def day_manifest(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/{tenant}/manifests?provider_code=&day=YYYY-MM-DD[&format=csv|pdf]."""
        fmt = _format(request, MANIFEST_FORMATS)
        provider = request.query.get("provider_code", "")
        if not provider or len(provider) > 64:
            raise bad_request("provider_code", "is required")
        try:
            day = date.fromisoformat(request.query.get("day", ""))
            start = datetime.combine(day, time(), UTC)
            end = start + timedelta(days=1)
        except (ValueError, OverflowError):  # 9999-12-31 has no next day
            raise bad_request("day", "must be a date (YYYY-MM-DD) before 9999-12-31") from None
        async with self.carriers.jobs.store.read() as conn:
            jobs = await q.jobs_booked_between(conn, request[TENANT], provider, start, end)
        jobs = [j for j in jobs if j.tracking_number and j.status not in {"booking", "cancelled"}]
        if not jobs:
            return problem(404, "not_found", detail="no jobs of that carrier on that day")
        data = ManifestData(
            provider_code=provider,
            day=day,
            generated_at=self.now(),
            shipper=party(jobs[0].pickup),
            lines=tuple(_line(job) for job in jobs),
        )
        body, content_type = render_manifest(data, fmt)
        return _download(body, content_type, f"manifest-{provider}-{day}.{fmt}".replace(":", "-"))


def _download(body: bytes, content_type: str, name: str) -> web.Response:
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    response.headers["Content-Disposition"] = ATTACHMENT.format(name=name)
    return response


def add_document_routes(
    app: web.Application,
    carriers: Carriers,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Add the label and manifest routes (the app's middlewares authenticate the tenant)."""
    api = DocumentApi(carriers, now)
    job = "/v1/{tenant}/carrier-jobs/{job_id}"
    app.router.add_get(job + "/label", api.label, allow_head=False)
    app.router.add_get(job + "/manifest", api.job_manifest, allow_head=False)
    app.router.add_get("/v1/{tenant}/manifests", api.day_manifest, allow_head=False)
