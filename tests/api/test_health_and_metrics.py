"""/healthz, /readyz and /metrics (Prometheus text), and the exposition format itself."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync import protocol as p
from gateway import __version__
from gateway.api import ApiParts, build_app
from gateway.config import load_gateway_config
from gateway.daemon import build_hub, start_hub, stop_hub
from gateway.hubmetrics import hub_metrics
from gateway.identity import init_identity
from gateway.metrics import Registry
from gateway.testing import FakeClock
from tests.access.harness import CLOUD_KID, CONFIG, HUB_ID, SIM_LOCKS, running_hub

SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Series:
    """Samples by (name, labels); every line must be a comment or a sample."""
    samples: Series = {}
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            continue
        match = SAMPLE.match(line)
        assert match, line
        labels = frozenset(LABEL.findall(match["labels"] or ""))
        samples[(match["name"], labels)] = float(match["value"])
    return samples


def pick(samples: Series, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def test_readyz_is_503_until_the_hub_is_started(tmp_path: Path) -> None:
    key = p.public_key_b64(Ed25519PrivateKey.generate().public_key())
    path = tmp_path / "gateway.toml"
    text = CONFIG.format(
        hub_id=HUB_ID, kid=CLOUD_KID, key=key, grace=0, policy="deny", locks=SIM_LOCKS
    )
    path.write_text(text)
    config = load_gateway_config(path)
    init_identity(config.hub.state_dir)
    clock = FakeClock()
    hub = await build_hub(
        config, wall=clock.now, monotonic=clock.monotonic, sync_check=lambda: True
    )
    parts = ApiParts(hub.engine, hub.intake, hub_metrics(hub.engine), None, hub.ready)
    try:
        async with TestClient(TestServer(build_app(parts))) as client:
            health = await client.get("/healthz")
            assert (health.status, await health.json()) == (
                200,
                {"status": "ok", "version": __version__},
            )
            ready = await client.get("/readyz")
            assert ready.status == 503
            assert await ready.json() == {
                "ready": False,
                "checks": {"store": True, "engine": False, "locks": True},
            }
            await start_hub(hub)
            ready = await client.get("/readyz")
            assert (ready.status, (await ready.json())["ready"]) == (200, True)
            # With no admin token configured the admin API does not exist.
            admin = await client.get("/v1/admin/locks", headers={"Authorization": "Bearer x"})
            assert (admin.status, await admin.json()) == (404, {"error": "not_found"})
    finally:
        await stop_hub(hub)


async def test_metrics_report_attempts_windows_outbox_locks_and_battery(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.send(hub.command("window.upsert", hub.upsert("w-m", "24682468", max_uses=2)))
        start = hub.clock.now() + timedelta(hours=2)
        later = hub.upsert(
            "w-later",
            "13571357",
            starts_at=p.rfc3339(start),
            ends_at=p.rfc3339(start + timedelta(hours=1)),
        )
        await hub.send(hub.command("window.upsert", later))
        assert (await hub.unlock("front-door", code="24682468"))[0] == 200
        assert (await hub.unlock("front-door", code="24682468"))[0] == 200
        assert (await hub.unlock("front-door", code="11111111"))[0] == 403
        hub.sim("parcel-room").set_battery(55)
        await hub.quiet()

        response = await hub.client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        samples = parse(await response.text())

        assert pick(samples, "lockhub_unlock_attempts_total", result="unlocked") == 2
        assert pick(samples, "lockhub_unlock_attempts_total", result="denied") == 1
        assert pick(samples, "lockhub_windows", state="used") == 1
        assert pick(samples, "lockhub_windows", state="scheduled") == 1
        assert pick(samples, "lockhub_windows", state="active") == 0
        depth = await hub.hub.store.outbox_depth()
        assert depth > 0
        assert pick(samples, "lockhub_outbox_depth") == depth
        for lock_id in ("front-door", "parcel-room"):
            states = {
                dict(labels)["state"]: value
                for (name, labels), value in samples.items()
                if name == "lockhub_lock_state" and dict(labels)["lock_id"] == lock_id
            }
            assert sorted(states.values()) == [0, 0, 0, 0, 1]  # one-hot
        assert pick(samples, "lockhub_lock_state", lock_id="front-door", state="unlocked") == 1
        assert pick(samples, "lockhub_lock_battery_percent", lock_id="parcel-room") == 55
        # Read from the lock when the hub started (the simulated lock starts full).
        assert pick(samples, "lockhub_lock_battery_percent", lock_id="front-door") == 100
        assert pick(samples, "lockhub_lockouts") == 0
        assert pick(samples, "lockhub_clock_synced") == 1


def test_exposition_keeps_counts_exact_and_escapes_labels() -> None:
    registry = Registry()
    counter = registry.counter("lockhub_test_total", "A test counter.")
    counter.inc(1_234_567, path='a"b\\c\nd')
    counter.inc(0.5, path="half")
    registry.gauge("lockhub_test_gauge", "Odd values.", lambda: [({"v": "inf"}, float("inf"))])
    text = registry.render()
    assert text.endswith("\n")
    assert "# TYPE lockhub_test_total counter" in text
    assert 'lockhub_test_total{path="a\\"b\\\\c\\nd"} 1234567\n' in text  # not 1.23457e+06
    assert 'lockhub_test_total{path="half"} 0.5\n' in text
    assert 'lockhub_test_gauge{v="inf"} +Inf\n' in text
    registry.gauge("lockhub_nan", "NaN.", lambda: [({}, float("nan")), ({"s": "-"}, -float("inf"))])
    assert "lockhub_nan NaN\n" in registry.render()
    assert 'lockhub_nan{s="-"} -Inf\n' in registry.render()
