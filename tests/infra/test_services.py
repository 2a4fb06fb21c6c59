"""The test services themselves work: a private broker that persists, a fresh database."""

from __future__ import annotations

import asyncio
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.testing import FakeClock
from tests.infra.services import MosquittoBroker, PostgresDatabase, port_open

pytestmark = pytest.mark.mqtt


def _retained(broker: MosquittoBroker, topic: str) -> bytes | None:
    got: list[bytes] = []
    done = threading.Event()

    def on_message(_client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        got.append(bytes(msg.payload))
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_message = on_message
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    done.wait(2.0)
    client.loop_stop()
    client.disconnect()
    return got[0] if got else None


def _publish_retained(broker: MosquittoBroker, topic: str, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def test_broker_persists_retained_messages_across_restart(mosquitto: MosquittoBroker) -> None:
    _publish_retained(mosquitto, "t/retained", b"kept")
    mosquitto.restart()
    assert _retained(mosquitto, "t/retained") == b"kept"


def test_killed_broker_stops_listening_and_comes_back(mosquitto: MosquittoBroker) -> None:
    mosquitto.kill()
    assert not mosquitto.running
    assert not port_open(mosquitto.port)
    mosquitto.start()
    assert port_open(mosquitto.port)
    assert mosquitto.url == f"mqtt://127.0.0.1:{mosquitto.port}"


@pytest.mark.postgres
async def test_postgres_database_is_fresh_and_writable(postgres_db: PostgresDatabase) -> None:
    import asyncpg  # noqa: PLC0415 - only this test needs it

    # Created for this session (tests share it and reset what they use).
    assert postgres_db.name.startswith("lockhub_test_")
    conn = await asyncpg.connect(postgres_db.dsn, timeout=5)
    try:
        assert await conn.fetchval("SELECT current_database()") == postgres_db.name
        await conn.execute("CREATE TEMP TABLE probe (x int)")
        await conn.execute("INSERT INTO probe VALUES (1)")
        assert await conn.fetchval("SELECT sum(x) FROM probe") == 1
    finally:
        await conn.close()


async def test_fake_clock_wakes_sleepers_only_when_advanced(fake_clock: FakeClock) -> None:
    start = fake_clock.now()
    task = asyncio.create_task(fake_clock.sleep(30))
    await asyncio.sleep(0)
    assert fake_clock.sleepers == 1
    fake_clock.advance(29)
    await asyncio.sleep(0)
    assert not task.done()
    fake_clock.advance(1)
    await asyncio.wait_for(task, 1)
    assert (fake_clock.now() - start).total_seconds() == 30
    assert fake_clock.monotonic() == 30


async def test_fake_clock_wall_jump_leaves_monotonic_alone(fake_clock: FakeClock) -> None:
    before = fake_clock.monotonic()
    fake_clock.set_wall(fake_clock.now().replace(year=2020))
    assert fake_clock.now().year == 2020
    assert fake_clock.monotonic() == before
    with pytest.raises(ValueError, match="backwards"):
        fake_clock.advance(-1)
    await fake_clock.sleep(0)


async def test_fake_clock_tells_which_deadlines_are_slept_on(fake_clock: FakeClock) -> None:
    task = asyncio.create_task(fake_clock.sleep(5))
    await asyncio.sleep(0)
    assert fake_clock.sleeping_until(5)
    assert not fake_clock.sleeping_until(4)
    fake_clock.advance(5)
    await asyncio.wait_for(task, 1)
    assert not fake_clock.sleeping_until(5)
