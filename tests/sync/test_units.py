"""The link's parts without a broker: backoff, batching, version fallback, outbox watch."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import aiomqtt
import pytest
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.protocol.b64 import b64url_decode
from cloud_sync.protocol.envelope import MAX_BATCH_BYTES, encode_batch
from gateway.config import load_gateway_config
from gateway.errors import ConfigError
from gateway.store import StoredRecord
from gateway.sync.backoff import Backoff
from gateway.sync.client import (
    SESSION_EXPIRY_SECONDS,
    VersionChoice,
    cancel_all,
    connect_properties,
    raise_if_cancelled,
    tls_parameters,
)
from gateway.sync.link import first_exit
from gateway.sync.outbox import OutboxPump, OutboxWatch, split_batches
from gateway.sync.settings import SyncSettings

from .cloud import eventually
from .conftest import HubFactory, SyncHub


def test_backoff_doubles_to_the_cap_with_full_jitter_and_resets() -> None:
    highest = Backoff(1.0, 60.0, uniform=lambda _low, high: high)
    assert [highest.next_delay() for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    highest.reset()
    assert highest.next_delay() == 1.0
    jittered = Backoff(1.0, 60.0)
    for _ in range(200):
        ceiling = jittered.ceiling(jittered.attempt)
        assert 0.0 <= jittered.next_delay() <= ceiling <= 60.0
    assert Backoff(1.0, 60.0).ceiling(10_000) == 60.0


def record(seq: int, size: int) -> StoredRecord:
    """A stored record whose envelope is about ``size`` bytes."""
    envelope = {"protected": "e30", "payload": "x" * size, "signature": "s"}
    now = datetime.now(UTC)
    return StoredRecord(seq, f"id-{seq}", "hub.alert", b"{}", envelope, "0" * 64, now, None)


def test_batches_respect_count_bytes_and_the_inflight_limit() -> None:
    small = [record(seq, 100) for seq in range(1, 26)]
    batches = split_batches(small, batch_size=10, max_batches=8)
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [r.seq for b in batches for r in b] == list(range(1, 26))
    assert len(split_batches(small, batch_size=10, max_batches=2)) == 2

    big = [record(seq, 100_000) for seq in range(1, 8)]
    batches = split_batches(big, batch_size=100, max_batches=8)
    assert [len(b) for b in batches] == [2, 2, 2, 1]
    assert all(len(encode_batch([r.envelope for r in b])) <= MAX_BATCH_BYTES for b in batches)
    assert split_batches([], batch_size=10, max_batches=8) == []


def refusal(identifier: int) -> MqttConnectError:
    """The error aiomqtt raises for a refused CONNACK."""
    return MqttConnectError(ReasonCode(PacketTypes.CONNACK, identifier=identifier))


def test_auto_falls_back_to_311_once_the_broker_refuses_mqtt5() -> None:
    choice = VersionChoice("auto")
    assert choice.current == "5"
    assert not choice.refused(aiomqtt.MqttError("Connection refused"))
    assert not choice.refused(refusal(0x87))  # not authorized: not a version problem
    assert choice.refused(refusal(0x84))
    assert choice.current == "3.1.1"
    assert not choice.refused(refusal(0x84))  # already fell back
    pinned = VersionChoice("5")
    assert not pinned.refused(refusal(0x84))
    assert pinned.current == "5"
    assert VersionChoice("3.1.1").current == "3.1.1"
    assert aiomqtt.MqttCodeError(1).rc == 1
    assert VersionChoice("auto").refused(aiomqtt.MqttCodeError(1))


def test_the_session_outlives_the_connection_for_a_week() -> None:
    props = connect_properties()
    # paho sets properties as dynamic attributes.
    assert getattr(props, "SessionExpiryInterval") == SESSION_EXPIRY_SECONDS == 7 * 24 * 3600  # noqa: B009
    assert getattr(props, "MaximumPacketSize") > MAX_BATCH_BYTES  # noqa: B009


async def test_first_exit_reraises_and_cancels_the_rest() -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()

    async def boom() -> None:
        raise aiomqtt.MqttError("gone")

    with pytest.raises(aiomqtt.MqttError, match="gone"):
        await first_exit(forever(), boom())
    assert cancelled.is_set()


async def swallows_one_cancel(swallowed: asyncio.Event) -> None:
    """As Python 3.11's wait_for does when the operation completes as the cancel comes."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        swallowed.set()
    await asyncio.sleep(3600)


async def test_first_exit_repeats_a_cancel_that_was_dropped() -> None:
    swallowed = asyncio.Event()

    async def boom() -> None:
        await asyncio.sleep(0.01)  # the other task is waiting by then
        raise aiomqtt.MqttError("gone")

    with pytest.raises(aiomqtt.MqttError, match="gone"):
        await asyncio.wait_for(first_exit(swallows_one_cancel(swallowed), boom()), 5)
    assert swallowed.is_set()


async def test_cancel_all_ends_tasks_that_drop_a_cancel() -> None:
    swallowed = [asyncio.Event() for _ in range(3)]
    tasks = [asyncio.create_task(swallows_one_cancel(event)) for event in swallowed]
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_all(tasks), 5)
    assert all(event.is_set() for event in swallowed)
    assert all(task.cancelled() for task in tasks)


async def test_a_dropped_cancel_is_raised_at_the_next_check() -> None:
    checked = asyncio.Event()

    async def work() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # dropped, as wait_for may
            await asyncio.sleep(3600)
        checked.set()
        raise_if_cancelled()

    task = asyncio.create_task(work())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert checked.is_set()
    raise_if_cancelled()  # this task was never cancelled: nothing happens


async def test_outbox_alerts_once_per_crossing_keeps_recording_and_purges(
    make_hub: HubFactory,
) -> None:
    settings = SyncSettings(max_outbox=1000, alert_fraction=0.01, retention=timedelta(0))
    async with make_hub("mqtt://127.0.0.1:1", link=False) as hub:
        store, clock = hub.hub.store, hub.hub.engine.clock
        # The watch's clock runs a second ahead: the purge cut-off (now - 0 retention) is then
        # surely past the ack times, which the store keeps to the millisecond.
        watch = OutboxWatch(
            store,
            settings,
            lambda: clock.status().as_record(),
            lambda: clock.now() + timedelta(seconds=1),
        )
        await hub.add_records(10, together=True)
        first = await watch.check()
        assert first >= 10
        await watch.check()  # still above: no second alert
        alerts = await kinds(hub)
        assert alerts.count("outbox_high") == 1
        await store.ack([(1, 10_000)])
        assert await watch.check() == 0
        assert await watch.purge() > 0
        await hub.add_records(1000, together=True)  # past the bound: still recorded
        assert await watch.check() == 1000
        assert await kinds(hub) == ["outbox_high", "outbox_full"]
        assert await store.outbox_depth() == 1002


async def kinds(hub: SyncHub) -> list[str]:
    """The kinds of outbox alerts in the outbox, in order."""
    found = []
    for stored in await hub.hub.store.unacked(100_000):
        body = json.loads(stored.payload)["body"]
        if body.get("kind", "").startswith("outbox_"):
            found.append(body["kind"])
    return found


async def test_an_unreachable_broker_is_retried_without_harming_the_hub(
    make_hub: HubFactory,
) -> None:
    async with make_hub("mqtt://127.0.0.1:1") as hub:
        await eventually(lambda: hub.link.backoff.attempt >= 3, "three retries")
        assert not hub.link.connected
        assert hub.link.connects == 0
        assert hub.link_task is not None
        assert not hub.link_task.done()
        await hub.add_records(1)
        assert hub.link.watch.depth >= 0


def config_text(extra: str) -> str:
    """A minimal hub config plus ``extra``."""
    return f'[hub]\nid = "h"\nstate_dir = "s"\n[mqtt]\nurl = "mqtt://127.0.0.1"\n{extra}'


def test_sync_config_has_defaults_and_checks_its_bounds(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(config_text(""))
    config = load_gateway_config(path, env={})
    assert config.mqtt.protocol == "auto"
    settings = config.sync.settings()
    assert (settings.batch_size, settings.max_outbox) == (100, 1_000_000)
    assert settings.alert_depth == 800_000
    assert settings.retention == timedelta(days=7)

    path.write_text(config_text('protocol = "3.1.1"\n[sync]\nbatch_size = 20\n'))
    config = load_gateway_config(path, env={"LOCKHUB_SYNC__MAX_OUTBOX_RECORDS": "5000"})
    assert config.mqtt.protocol == "3.1.1"
    assert (config.sync.batch_size, config.sync.settings().max_outbox) == (20, 5000)

    for bad, field in [
        ("[sync]\nbatch_size = 501\n", "sync.batch_size"),
        ("[sync]\nmax_outbox_records = 10\n", "sync.max_outbox_records"),
        ("[sync]\noutbox_alert_fraction = 0\n", "sync.outbox_alert_fraction"),
        ("[sync]\nbogus = 1\n", "sync.bogus"),
        ('protocol = "4"\n', "mqtt.protocol"),
    ]:
        path.write_text(config_text(bad))
        with pytest.raises(ConfigError, match=field):
            load_gateway_config(path, env={})


def test_mqtts_urls_use_tls_with_the_configured_files(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    tls = 'url = "mqtts://broker.example"\nca = "ca.pem"\ncert = "hub.pem"\nkey = "hub.key"\n'
    path.write_text(f'[hub]\nid = "h"\nstate_dir = "s"\n[mqtt]\n{tls}')
    params = tls_parameters(load_gateway_config(path, env={}).mqtt)
    assert params is not None
    assert (params.ca_certs, params.certfile, params.keyfile) == (
        str(tmp_path / "ca.pem"),
        str(tmp_path / "hub.pem"),
        str(tmp_path / "hub.key"),
    )
    path.write_text(config_text(""))
    assert tls_parameters(load_gateway_config(path, env={}).mqtt) is None


async def test_a_record_lost_behind_later_acks_is_resent_without_waiting_for_a_stall(
    make_hub: HubFactory,
) -> None:
    # A long stall timer, a short hole timer: only the hole rule can resend here.
    settings = SyncSettings(batch_size=5, resend_after=3600.0, hole_resend_after=0.05, poll=0.01)
    async with make_hub("mqtt://127.0.0.1:1", link=False) as hub:
        store = hub.hub.store
        pump = OutboxPump(store, settings)
        sent: list[int] = []

        async def publish(payload: bytes) -> None:
            sent.extend(json.loads(b64url_decode(e["payload"]))["seq"] for e in json.loads(payload))

        task = asyncio.create_task(pump.run(publish))
        try:
            await hub.add_records(10, together=True)
            head = (await store.chain_head()).seq
            await eventually(lambda: head in sent, "the first publish")
            first = sent.index(1)
            # The cloud stored and acked everything after seq 1: seq 1's message was lost.
            await store.ack([(2, head)])
            pump.acked(head)
            await eventually(lambda: sent.count(1) == 2, "seq 1 resent")
            assert sent[first + 1 :].count(1) == 1
            assert pump.resends == 1
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_the_pump_keeps_at_most_a_window_of_records_out_until_acks_free_room(
    make_hub: HubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Timers out of reach: only acks may let more records out.
    settings = SyncSettings(
        batch_size=10, inflight_batches=3, resend_after=3600.0, hole_resend_after=3600.0, poll=0.01
    )
    assert settings.window == 30
    async with make_hub("mqtt://127.0.0.1:1", link=False) as hub:
        store = hub.hub.store
        looks = 0
        unacked = store.unacked

        async def counted(limit: int) -> list[StoredRecord]:
            nonlocal looks
            looks += 1
            return await unacked(limit)

        # A spy on the real method: each call is one look of the pump at its outbox.
        monkeypatch.setattr(store, "unacked", counted)
        pump = OutboxPump(store, settings)
        messages: list[list[int]] = []

        async def publish(payload: bytes) -> None:
            messages.append(
                [json.loads(b64url_decode(e["payload"]))["seq"] for e in json.loads(payload)]
            )

        def sent() -> list[int]:
            return [seq for message in messages for seq in message]

        def looked_since(seen: int) -> bool:
            return looks > seen

        async def new_records_change_nothing() -> None:
            """New records wake the pump; with no room it looks and publishes nothing."""
            for n in range(3):
                seen = looks
                await hub.add_records(1, start=1000 + n)
                await eventually(partial(looked_since, seen), "the pump to look again")

        await hub.add_records(100, together=True)
        task = asyncio.create_task(pump.run(publish))
        try:
            await eventually(lambda: len(sent()) >= 30, "the first window")
            await new_records_change_nothing()
            assert sent() == list(range(1, 31))
            assert [len(m) for m in messages] == [10, 10, 10]
            # The cloud acks the first 15: that much room, and no more, opens.
            await store.ack([(1, 15)])
            pump.acked(15)
            await eventually(lambda: len(sent()) >= 45, "15 more records")
            await new_records_change_nothing()
            assert sent() == list(range(1, 46))
            assert [len(m) for m in messages] == [10, 10, 10, 10, 5]
            assert pump.resends == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
