"""A task's carrier job from rate shop to cost export, through the wired cloud API.

A tariff partner (the site's own couriers) quotes; the offer is accepted; the job's label
(PDF with a Code128 and a QR that decode, or ZPL) and manifests come from its URLs; the
hub's PoD for the task completes the job, whose cost lands in the billing export once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cloud_sync.api import build_cloud_app
from cloud_sync.carriers.credentials import KeyRing, generate_key
from cloud_sync.carriers.service import Carriers, carrier_store
from cloud_sync.carriers.settings import CarriersSection
from cloud_sync.config import load_cloud_config
from cloud_sync.desk import create_key_file, default_key_file, key_ring, open_desk
from cloud_sync.protocol.fields import rfc3339
from cloud_sync.service import CloudService
from tests.cloud_carriers.conftest import TARIFF
from tests.cloud_documents.conftest import decode

from .conftest import HUB_ID, START, TENANT, HubChain, SettableClock
from .test_sync import pod_body
from .test_windows import make_window

ADDRESS = {
    "name": "Parcel room", "phone": "+4930123456", "street": "Invalidenstr. 1",
    "city": "Berlin", "postcode": "10115", "country": "DE",
}  # fmt: skip
RECIPIENT = {**ADDRESS, "name": "Ada Lovelace", "street": "Torstr. 9"}


@dataclass
class Desk:
    client: TestClient[Any, Any]
    headers: dict[str, str]

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = await self.client.request(method, path, headers=self.headers, **kwargs)
        return response.status, await response.json()

    async def raw(self, path: str) -> tuple[int, bytes, str]:
        response = await self.client.get(path, headers=self.headers)
        return response.status, await response.read(), response.headers["Content-Type"]


@pytest.fixture
async def desk(service: CloudService, clock: SettableClock) -> AsyncIterator[Desk]:
    carriers = Carriers.build(
        carrier_store(service.store),
        CarriersSection(),
        ring=KeyRing.parse(f"k1:{generate_key()}", "k1"),
        now=clock,
        tasks=service.store.get_task,
    )
    app = build_cloud_app(
        service, lambda _: None, ready=dict, carriers=carriers, database=service.store.database
    )
    key = await service.create_api_key(TENANT)
    async with TestClient(TestServer(app)) as client:
        yield Desk(client, {"Authorization": f"Bearer {key}"})


async def book(desk: Desk) -> dict[str, Any]:
    """A tariff partner, a rate shop for task-1 and its best offer accepted: the job."""
    partner = {"provider_code": "tariff", "name": "Own couriers", "settings": {"table": TARIFF}}
    status, _ = await desk.call("POST", f"/v1/{TENANT}/carrier-partners", json=partner)
    assert status == 201
    shop = {
        "pickup": ADDRESS, "dropoff": RECIPIENT, "ready_at": rfc3339(START),
        "parcels": [{"weight_g": 1200, "length_cm": 30, "width_cm": 20, "height_cm": 10}],
    }  # fmt: skip
    status, offers = await desk.call("POST", f"/v1/{TENANT}/tasks/task-1/rate-shop", json=shop)
    assert status == 200, offers
    offer_id = offers["offers"][0]["offer_id"]
    status, job = await desk.call("POST", f"/v1/{TENANT}/offers/{offer_id}/accept")
    assert status == 201, job
    return dict(job)


async def test_a_job_prints_its_label_and_manifests(desk: Desk) -> None:
    job = await book(desk)
    assert job["label_url"] == f"/v1/{TENANT}/carrier-jobs/{job['job_id']}/label"
    status, pdf, content_type = await desk.raw(job["label_url"])
    assert (status, content_type) == (200, "application/pdf")
    codes = decode(pdf)
    assert job["tracking_number"] in codes.values()
    assert any(value.endswith(f"/carrier-jobs/{job['job_id']}") for value in codes.values())
    status, zpl, content_type = await desk.raw(job["label_url"] + "?format=zpl")
    assert (status, content_type) == (200, "application/zpl")
    assert zpl.startswith(b"^XA")
    assert zpl.rstrip().endswith(b"^XZ")
    assert job["tracking_number"].encode() in zpl

    status, body, _ = await desk.raw(job["manifest_url"])
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert job["tracking_number"] in {row.get("tracking_number") for row in rows}
    day = START.date().isoformat()
    path = f"/v1/{TENANT}/manifests?provider_code=tariff&day={day}&format=pdf"
    status, day_pdf, content_type = await desk.raw(path)
    assert (status, content_type) == (200, "application/pdf")
    assert day_pdf.startswith(b"%PDF")
    status, _ = await desk.call(
        "GET", f"/v1/{TENANT}/manifests?provider_code=tariff&day=2020-01-01"
    )
    assert status == 404
    for bad in ("?format=docx", ""):
        target = job["label_url"] + bad if bad else f"/v1/{TENANT}/manifests?day=x"
        assert (await desk.call("GET", target))[0] == 400


async def test_the_hubs_pod_completes_the_job_and_its_cost_is_exported_once(
    desk: Desk, service: CloudService, chain: HubChain, clock: SettableClock
) -> None:
    view, _, _ = await make_window(service)
    job = await book(desk)
    refresh = f"/v1/{TENANT}/carrier-jobs/{job['job_id']}/refresh"
    status, pending = await desk.call("POST", refresh)
    assert (status, pending["status"], pending["cost"]) == (200, "pending", None)

    await service.store.ingest(HUB_ID, [chain.record("pod.recorded", pod_body(view.window_id))])
    status, done = await desk.call("POST", refresh)
    assert (status, done["status"]) == (200, "delivered")
    assert done["cost"]["amount_minor"] == job["quoted"]["amount_minor"]

    clock.advance(86_400)
    window = f"from={rfc3339(START - timedelta(hours=1))}&to={rfc3339(clock())}"
    status, export, _ = await desk.raw(f"/v1/{TENANT}/billing/export?{window}&format=csv")
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(export.decode())))
    assert len(rows) == 1
    again = await desk.raw(f"/v1/{TENANT}/billing/export?{window}&format=csv")
    assert again[1] == export  # the same export, never a second copy of the event


def test_the_key_ring_comes_from_config_or_the_state_dir(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    state = tmp_path / "state"
    state.mkdir()
    path.write_text(
        f'[cloud]\nstate_dir = "{state}"\ndatabase_url = "sqlite+aiosqlite:///{tmp_path}/c.db"\n'
        'signing_kid = "cloud-1"\n[mqtt]\nurl = "mqtt://127.0.0.1"\n'
    )
    config = load_cloud_config(path, env={})
    with pytest.raises(Exception, match="run `lockhub cloud init`"):
        key_ring(config)
    assert create_key_file(default_key_file(state))
    assert not create_key_file(default_key_file(state))  # never replaced
    assert (default_key_file(state).stat().st_mode & 0o777) == 0o600
    ring = key_ring(config)
    sealed = ring.seal({"token": "x"}, tenant="t", partner_id="p")
    assert key_ring(config).open(sealed, tenant="t", partner_id="p") == {"token": "x"}


async def test_no_key_ring_leaves_the_desk_closed(tmp_path: Path, service: CloudService) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(
        f'[cloud]\nstate_dir = "{tmp_path}"\ndatabase_url = "sqlite+aiosqlite:///{tmp_path}/c.db"\n'
        'signing_kid = "cloud-1"\n[mqtt]\nurl = "mqtt://127.0.0.1"\n'
    )
    config = load_cloud_config(path, env={})
    assert await open_desk(config, service.store) is None
    create_key_file(default_key_file(tmp_path))
    desk = await open_desk(config, service.store)
    assert desk is not None
    await desk.close()
