"""Carriers: rate shopping for a task among two tariff-table partners (no external calls),
the best offer booked, its label, the courier's delivery completing the job, a cost export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from cloud_sync.protocol.messages import rfc3339

from .delivery import COURIER
from .scene import Demo, DemoFailedError, expect

SHIPPED_TASK = "parcel-4001"
SITE = {
    "name": "Harbour Point parcel room", "phone": "+4930123456", "street": "Hafenstrasse 1",
    "city": "Berlin", "postcode": "10557", "country": "DE",
}  # fmt: skip
RECIPIENT = {
    "name": "R. Lindqvist", "phone": "+4930654321", "street": "Kastanienallee 12",
    "city": "Berlin", "postcode": "10435", "country": "DE",
}  # fmt: skip
PARCEL = {"weight_g": 2400, "length_cm": 40, "width_cm": 30, "height_cm": 20}


def _tariff(service: str, city_price: int, lead_minutes: int) -> dict[str, Any]:
    """A tariff table: one zone for the city's postcodes, a surcharge over 5 kg."""
    return {
        "service": service,
        "currency": "EUR",
        "zones": [
            {
                "name": "berlin",
                "postcodes": ["10", "12", "13"],
                "amount_minor": city_price,
                "lead_minutes": lead_minutes,
                "country": "DE",
            },
        ],
        "weight_bands": [
            {"max_g": 5000, "surcharge_minor": 0},
            {"max_g": 30000, "surcharge_minor": 350},
        ],
    }


PARTNERS = (
    ("Harbour own couriers", _tariff("own_courier", 690, 90)),
    ("Kiez cargo bikes", _tariff("cargo_bike", 540, 120)),
)


def _euros(minor: int) -> str:
    return f"EUR {minor / 100:.2f}"


async def step_rate_shop(demo: Demo) -> str:
    """Two tariff partners quote a task; the best-ranked offer is accepted, idempotently."""
    for name, table in PARTNERS:
        body = {"provider_code": "tariff", "name": name, "settings": {"table": table}}
        reply = await demo.cloud_api("POST", "/carrier-partners", body)
        expect(reply.status == 201, f"partner {name} was refused: {reply.status} {reply.body}")
    ready_at = rfc3339(datetime.now(UTC))
    request = {"pickup": SITE, "dropoff": RECIPIENT, "parcels": [PARCEL], "ready_at": ready_at}
    shop = await demo.cloud_api("POST", f"/tasks/{SHIPPED_TASK}/rate-shop", request)
    expect(shop.status == 200, f"rate shop failed: {shop.status} {shop.body}")
    offers: list[dict[str, Any]] = shop.body["offers"]
    expect(len(offers) == len(PARTNERS), f"{len(offers)} offers, skipped {shop.body['skipped']}")
    best = min(offers, key=lambda offer: offer["rank"])
    headers = {"Idempotency-Key": f"book-{best['offer_id']}"}
    first = await demo.cloud_api("POST", f"/offers/{best['offer_id']}/accept", None, headers)
    expect(first.status == 201, f"accepting the offer failed: {first.status} {first.body}")
    again = await demo.cloud_api("POST", f"/offers/{best['offer_id']}/accept", None, headers)
    replayed = again.headers.get("Idempotent-Replayed") == "true"
    expect(again.status == 200 and replayed, f"a repeated accept booked again ({again.status})")
    expect(again.body["job_id"] == first.body["job_id"], "a repeated accept made another job")
    demo.jobs[SHIPPED_TASK] = first.body
    prices = ", ".join(f"{o['service']} {_euros(o['amount_minor'])}" for o in offers)
    return (
        f"{len(offers)} offers ({prices}); best {best['service']} accepted: job "
        f"{first.body['job_id']}, tracking {first.body['tracking_number']}; "
        "the same Idempotency-Key again: 200, same job"
    )


async def step_label(demo: Demo) -> str:
    """The job's shipping label as a PDF."""
    job = demo.jobs.get(SHIPPED_TASK)
    if job is None:
        raise DemoFailedError("no carrier job was booked")
    path = f"/carrier-jobs/{job['job_id']}/label"
    reply = await demo.cloud_api("GET", path, query={"format": "pdf"})
    expect(reply.status == 200, f"no label: {reply.status} {reply.body!r:.200}")
    content_type = reply.headers.get("Content-Type", "")
    expect(content_type.startswith("application/pdf"), f"the label is {content_type}")
    expect(reply.raw.startswith(b"%PDF-"), "the label is not a PDF")
    label = demo.workdir / f"label-{job['tracking_number']}.pdf"
    label.write_bytes(reply.raw)
    demo.files.append(("shipping label (PDF)", label))
    return f"{len(reply.raw)} bytes of PDF, tracking {job['tracking_number']}"


async def step_job_done(demo: Demo) -> str:
    """The courier delivers the booked task at the loading dock; the job completes with its cost."""
    job = demo.jobs.get(SHIPPED_TASK)
    if job is None:
        raise DemoFailedError("no carrier job was booked")
    window = await demo.create_window(
        SHIPPED_TASK, "loading-dock", courier=COURIER, carrier_job_id=job["job_id"]
    )
    await demo.window_on_hub(window)
    reply = await demo.unlock("loading-dock", window["code"])
    expect(reply.status == 200, f"the carrier's courier was refused: {reply.body}")
    demo.pods[SHIPPED_TASK] = reply.body["pod_id"]
    await demo.delivered(SHIPPED_TASK)
    refreshed = await demo.cloud_api("POST", f"/carrier-jobs/{job['job_id']}/refresh")
    expect(refreshed.status == 200, f"refresh failed: {refreshed.status} {refreshed.body}")
    done = refreshed.body
    expect(done["status"] == "delivered", f"the job is {done['status']}, not delivered")
    cost = done["cost"]
    expect(cost is not None, "no cost was captured for the delivered job")
    demo.jobs[SHIPPED_TASK] = done
    return (
        f"window tied to job {done['job_id']} opened the loading dock; the task's PoD "
        f"completed the job: delivered, cost {_euros(cost['amount_minor'])} captured"
    )


async def step_cost_export(demo: Demo) -> str:
    """The tenant's cost export (FOCUS-style CSV) holds the job's cost once."""
    job = demo.jobs.get(SHIPPED_TASK)
    if job is None or job.get("cost") is None:
        raise DemoFailedError("no job cost to export")
    # The range must have ended; its end is exclusive and in milliseconds, like the events.
    end = datetime.now(UTC)
    start = end - timedelta(days=1)
    reply = await demo.cloud_api(
        "GET", "/billing/export", query={"from": rfc3339(start), "to": rfc3339(end)}
    )
    expect(reply.status == 200, f"export failed: {reply.status} {reply.body!r:.200}")
    rows = list(csv.DictReader(io.StringIO(reply.raw.decode("utf-8"))))
    mine = [row for row in rows if row["ResourceId"] == job["job_id"]]
    expect(len(mine) == 1, f"the job appears {len(mine)} times in the export")
    billed = int(mine[0]["x_BilledCostMinorUnits"])
    expect(billed == job["cost"]["amount_minor"], f"exported {billed}, captured another cost")
    path = demo.workdir / f"costs-{reply.headers.get('X-Export-Id', 'export')}.csv"
    path.write_bytes(reply.raw)
    demo.files.append(("cost export (CSV)", path))
    return f"{len(rows)} charge row(s); the job's {_euros(billed)} exported once"
