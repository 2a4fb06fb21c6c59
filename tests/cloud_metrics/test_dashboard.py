"""The example Grafana dashboard: well-formed, templated, and every query names real series."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from tests.cloud.conftest import HUB_ID
from tests.cloud_metrics import promtext
from tests.cloud_metrics.cloudsite import cloud_site
from tests.statuspage.site import busy_site

DASHBOARD = Path(__file__).parents[2] / "config" / "grafana" / "lockhub-dashboard.json"
METRIC = re.compile(r"\blockhub_[a-zA-Z0-9_:]*")
HUB_PANELS = {
    "Unlock attempts by result", "Windows by state", "Outbox depth", "Lock states",
    "Lock battery", "Sync link", "Clock synced",
}  # fmt: skip
CLOUD_PANELS = {
    "Ingest rate", "Ack latency", "Chain gaps and broken chains", "API 5xx",
    "Rate-limited requests",
}  # fmt: skip


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def exposed(text: str) -> set[str]:
    """Every series name an exposition can be queried by (histogram suffixes included)."""
    names = set()
    for family in promtext.parse(text).values():
        names.add(family.name)
        names.update(name for name, _ in family.samples)
    return names


async def scraped_names(tmp_path: Path) -> set[str]:
    """Series names from a real scrape of a busy hub and of a cloud that ingested records."""
    for part in ("hub", "cloud"):
        (tmp_path / part).mkdir()
    async with busy_site(tmp_path / "hub") as site, ClientSession() as http:
        hub = await (await http.get(site.url + "/metrics")).text()
    async with cloud_site(tmp_path / "cloud") as cloud:
        result = await cloud.store.ingest(HUB_ID, cloud.chain.events(2))
        cloud.metrics.ingested(result, 0.01)
        await cloud.client.get("/healthz")
        text = await cloud.scrape()
    return exposed(hub) | exposed(text)


async def test_every_panel_queries_series_our_exporters_emit(tmp_path: Path) -> None:
    board = json.loads(DASHBOARD.read_text())
    names = await scraped_names(tmp_path)
    queried = set()
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            metrics = set(METRIC.findall(target["expr"]))
            assert metrics, f"{panel['title']}: {target['expr']}"
            missing = metrics - names
            assert not missing, f"{panel['title']} queries {missing}, which no exporter emits"
            queried |= metrics
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            assert set(METRIC.findall(variable["query"]["query"])) <= names
    # The panels the dashboard promises, and the series each must chart.
    titles = {panel["title"] for panel in panels(board)}
    assert titles >= HUB_PANELS | CLOUD_PANELS
    assert {"lockhub_outbox_depth", "lockhub_lock_state", "lockhub_lock_battery_percent"} <= queried
    assert "lockhub_cloud_ack_latency_seconds_bucket" in queried


def test_dashboard_is_a_templated_grafana_10_model() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["schemaVersion"] >= 38  # Grafana 10.0
    assert board["uid"]
    assert board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        # Every query goes to the data source the viewer picked, never a fixed uid.
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])
        assert all(re.fullmatch(r"[A-Z]", t["refId"]) for t in panel["targets"])
