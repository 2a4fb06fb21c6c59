"""The cloud's /metrics: ingest results, chains, ack latency, publishes, API requests."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cloud_sync.metrics import ACK_LATENCY_BUCKETS, CloudMetrics, Histogram
from cloud_sync.protocol.fields import rfc3339
from tests.cloud.conftest import HUB_ID, START
from tests.cloud_metrics import promtext
from tests.cloud_metrics.cloudsite import cloud_site

WINDOWS = "/v1/acme/locks/access-windows"


def window_body() -> dict[str, object]:
    return {
        "task_id": "task-1", "hub_id": HUB_ID, "lock_id": "front-door",
        "starts_at": rfc3339(START), "ends_at": rfc3339(START + timedelta(hours=2)),
        "max_uses": 1,
    }  # fmt: skip


async def test_ingest_and_chain_series_follow_what_the_store_did(tmp_path: Path) -> None:
    async with cloud_site(tmp_path) as site:
        store, chain, metrics = site.store, site.chain, site.metrics
        first = chain.events(3)
        result = await store.ingest(HUB_ID, first)
        metrics.ingested(result, 0.004)
        metrics.sent(site.service.ack_command(HUB_ID, result.acked))
        chain.events(1)  # seq 4 never arrives: 5 and 6 wait behind the gap
        result = await store.ingest(HUB_ID, chain.events(2))
        metrics.ingested(result, 0.3)
        result = await store.ingest(HUB_ID, first)  # redelivered
        metrics.ingested(result, 0.02)
        forged = {**chain.events(1)[0], "signature": first[0]["signature"]}
        result = await store.ingest(HUB_ID, [forged])
        metrics.ingested(result, 12.0)
        metrics.refused()

        families = promtext.parse(await site.scrape())

        batches = families["lockhub_cloud_ingest_batches_total"]
        assert batches.value(outcome="ok") == 3
        assert batches.value(outcome="problems") == 1
        assert batches.value(outcome="refused") == 1
        records = families["lockhub_cloud_ingest_records_total"]
        assert records.value(result="stored") == 5
        assert records.value(result="duplicate") == 3
        assert records.value(result="rejected") == 1
        assert families["lockhub_cloud_records_chained_total"].value() == 3
        assert families["lockhub_cloud_published_messages_total"].value(channel="acks") == 1
        assert families["lockhub_cloud_hubs"].value() == 1
        assert families["lockhub_cloud_chain_gap_records"].value() == 2
        assert families["lockhub_cloud_chain_gap_hubs"].value() == 1
        assert families["lockhub_cloud_chains_broken"].value() == 0
        assert families["lockhub_cloud_mqtt_connected"].value() == 1

        latency = families["lockhub_cloud_ack_latency_seconds"]
        assert latency.type == "histogram"
        buckets = {dict(labels)["le"]: v for (name, labels), v in latency.samples.items()
                   if name.endswith("_bucket")}  # fmt: skip
        assert buckets["0.005"] == 1
        assert buckets["0.025"] == 2
        assert buckets["0.5"] == 3
        assert buckets["10"] == 3
        assert buckets["+Inf"] == 4
        assert latency.samples[("lockhub_cloud_ack_latency_seconds_sum", ())] == pytest.approx(
            12.324
        )

        # A different record for a seq already chained breaks the chain.
        conflict = chain.record(
            "hub.alert",
            {"kind": "x", "severity": "warning", "message": "x", "details": {}},
            seq=2,
        )
        metrics.ingested(await store.ingest(HUB_ID, [conflict]), 0.01)
        families = promtext.parse(await site.scrape())
        assert families["lockhub_cloud_chains_broken"].value() == 1
        assert families["lockhub_cloud_ingest_records_total"].value(result="conflict") == 1
        assert families["lockhub_cloud_ingest_batches_total"].value(outcome="problems") == 2

        # The records waiting behind the gap are held the moment the chain breaks; later
        # records are stored and held too, and counted.
        held = families["lockhub_cloud_records_held_total"].value()
        assert held >= 1
        result = await store.ingest(HUB_ID, chain.events(2))
        assert result.stored >= 1
        assert result.held == result.stored
        metrics.ingested(result, 0.01)
        families = promtext.parse(await site.scrape())
        assert families["lockhub_cloud_records_held_total"].value() == held + result.held


async def test_api_requests_are_counted_by_route_template_and_status(tmp_path: Path) -> None:
    async with cloud_site(tmp_path) as site:
        client, auth = site.client, site.auth()
        assert (await client.post(WINDOWS, json=window_body(), headers=auth)).status == 201
        assert (await client.get(WINDOWS + "/w-unknown", headers=auth)).status == 404
        assert (await client.get(WINDOWS, headers=auth)).status == 200
        assert (await client.get(WINDOWS, headers=auth)).status == 429  # burst of 3 spent
        assert (await client.get(WINDOWS)).status == 401
        assert (await client.get("/no/such/path")).status == 404
        assert (await client.get("/healthz")).status == 200
        await site.scrape()

        families = promtext.parse(await site.scrape())
        requests = families["lockhub_cloud_http_requests_total"]

        def count(route: str, method: str, status: str) -> float:
            return requests.value(route=route, method=method, status=status)

        assert count(WINDOWS.replace("acme", "{tenant}"), "POST", "201") == 1
        assert count("/v1/{tenant}/locks/access-windows/{window_id}", "GET", "404") == 1
        assert count("/v1/{tenant}/locks/access-windows", "GET", "200") == 1
        assert count("/v1/{tenant}/locks/access-windows", "GET", "429") == 1
        assert count("/v1/{tenant}/locks/access-windows", "GET", "401") == 1
        assert count("unmatched", "GET", "404") == 1
        assert count("/healthz", "GET", "200") == 1
        assert count("/metrics", "GET", "200") == 1  # the first scrape; this one is not done
        # No concrete path becomes a label: no tenant, no window id.
        assert not any("acme" in v or "w-unknown" in v for labels in requests.values()
                       for _, v in labels)  # fmt: skip
        # The window's commands went to the broker through the counting publisher.
        assert families["lockhub_cloud_published_messages_total"].value(channel="commands") == 1
        assert len(site.published) == 1


def test_histogram_renders_cumulative_buckets() -> None:
    histogram = Histogram("lockhub_test_seconds", "A test histogram.", (0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 7.0):
        histogram.observe(value)
    assert list(histogram.render()) == [
        "# HELP lockhub_test_seconds A test histogram.",
        "# TYPE lockhub_test_seconds histogram",
        'lockhub_test_seconds_bucket{le="0.1"} 2',
        'lockhub_test_seconds_bucket{le="1"} 3',
        'lockhub_test_seconds_bucket{le="+Inf"} 4',
        "lockhub_test_seconds_sum 7.65",
        "lockhub_test_seconds_count 4",
    ]


def test_a_fresh_registry_is_valid_and_has_no_chain_samples_without_a_reader() -> None:
    metrics = CloudMetrics()
    families = promtext.parse(metrics.render())
    assert families["lockhub_cloud_chains_broken"].samples == {}
    assert "lockhub_cloud_mqtt_connected" not in families
    latency = families["lockhub_cloud_ack_latency_seconds"]
    assert len(latency.samples) == len(ACK_LATENCY_BUCKETS) + 3  # buckets, +Inf, sum, count
