"""Raw paho-mqtt baselines on the bench's broker: pipelined QoS 1 throughput and round trips.

Plain threaded paho clients (``loop_start``), MQTT 3.1.1, no signing, no database: what the
broker and the client library alone cost for messages of a given size.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

HOST = "127.0.0.1"
# Connecting and subscribing to a local broker takes milliseconds; a bound keeps a broken
# broker from hanging the bench.
SETUP_SECONDS = 10.0
# No baseline run takes long (100,000 small messages: seconds); a lost message must fail the
# bench, not hang it.
RUN_SECONDS = 300.0


@contextmanager
def client(
    port: int, name: str, inflight: int = 20, *, nodelay: bool = False
) -> Iterator[mqtt.Client]:
    """A connected paho client with its network thread running; ``inflight`` QoS 1 at once;
    with ``nodelay``, TCP_NODELAY on its socket (as the hub's and the worker's clients)."""
    connected = threading.Event()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(inflight)
    c.max_queued_messages_set(0)  # unbounded: the publisher queues everything at once
    c.on_connect = lambda *_: connected.set()
    c.connect(HOST, port)
    sock = c.socket()
    if nodelay and isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.loop_start()
    try:
        if not connected.wait(SETUP_SECONDS):
            raise TimeoutError(f"paho client {name} did not connect")
        yield c
    finally:
        c.disconnect()
        c.loop_stop()


def subscribe(c: mqtt.Client, topic: str) -> None:
    """Subscribe at QoS 1 and wait for the SUBACK."""
    done = threading.Event()
    c.on_subscribe = lambda *_: done.set()
    c.subscribe(topic, qos=1)
    if not done.wait(SETUP_SECONDS):
        raise TimeoutError(f"no SUBACK for {topic}")


def throughput(port: int, count: int, size: int, window: int) -> float:
    """Messages/s: ``count`` QoS 1 messages of ``size`` bytes, pipelined, until all received.

    At most ``window`` messages are out at once, sent and not yet received by the subscriber:
    the flow control of the hub's link (a record is out until the cloud acks it). Without it
    a publisher outruns the subscriber and mosquitto drops what passes its queue limit
    (``max_queued_messages``, 1000 by default) even at QoS 1.
    """
    topic = "bench/raw/throughput"
    received = 0
    done = threading.Event()
    room = threading.Semaphore(window)

    def on_message(*_: object) -> None:
        nonlocal received
        received += 1
        room.release()
        if received == count:
            done.set()

    payload = os.urandom(size)
    with client(port, "bench-raw-sub") as sub, client(port, "bench-raw-pub", window) as pub:
        sub.on_message = on_message
        subscribe(sub, topic)
        start = time.perf_counter()
        deadline = start + RUN_SECONDS
        for _ in range(count):
            if not room.acquire(timeout=max(0.0, deadline - time.perf_counter())):
                raise TimeoutError(f"subscriber got {received} of {count} messages")
            pub.publish(topic, payload, qos=1)
        if not done.wait(max(0.0, deadline - time.perf_counter())):
            raise TimeoutError(f"subscriber got {received} of {count} messages")
        return count / (time.perf_counter() - start)


def round_trips(port: int, count: int, size: int) -> tuple[list[float], list[float]]:
    """One-way and round-trip seconds: A publishes, B receives and publishes back, A receives.

    Both clients set TCP_NODELAY, as the hub's link and the cloud worker do: without it each
    hop waits ~40 ms for the peer's delayed ACK (Nagle's algorithm).
    """
    ping, pong = "bench/raw/ping", "bench/raw/pong"
    arrived: list[float] = []
    back = threading.Event()
    one_way: list[float] = []
    round_trip: list[float] = []
    payload = os.urandom(size)
    with (
        client(port, "bench-rt-a", nodelay=True) as a,
        client(port, "bench-rt-b", nodelay=True) as b,
    ):

        def echo(c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
            arrived.append(time.perf_counter())
            c.publish(pong, message.payload, qos=1)

        b.on_message = echo
        a.on_message = lambda *_: back.set()
        subscribe(b, ping)
        subscribe(a, pong)
        for _ in range(count):
            arrived.clear()
            back.clear()
            start = time.perf_counter()
            a.publish(ping, payload, qos=1)
            if not back.wait(SETUP_SECONDS):
                raise TimeoutError("a ping or its pong was lost")
            round_trip.append(time.perf_counter() - start)
            one_way.append(arrived[0] - start)
    return one_way, round_trip
