"""The cloud's MQTT worker: records in (verified, stored, acked), hellos answered, commands out.

Several workers can run against one broker: they share ``$share/<group>/...`` subscriptions,
so each message reaches one of them, and the store's ingest is idempotent on (hub, epoch,
seq), so a message redelivered to another worker after a crash is stored once. A worker acks
only what its ingest reported durably stored, after the commit.

No message ends the worker: a bad one is refused, a store failure leaves it unacked (the hub
sends it again), and a bug it trips over is logged with its stack; only broker errors end a
connection, and ``run`` reconnects after any failure. Under MQTT 5 the worker's session
expires ``worker_session_expiry`` seconds after it disconnects, so a worker gone for good
stops being handed its share of the records (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiomqtt
import structlog
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud_sync.protocol.envelope import decode_batch, verify
from cloud_sync.protocol.errors import MalformedError, ProtocolError
from cloud_sync.protocol.keys import load_ed25519_public
from cloud_sync.protocol.policy import accept_hello
from cloud_sync.protocol.topics import Channel, cloud_subscription, parse_topic
from gateway.sync.client import (
    MAX_PACKET_BYTES,
    SOCKET_OPTIONS,
    Version,
    VersionChoice,
    cancel_all,
    raise_if_cancelled,
)

from .config import CloudMqttSection
from .errors import CloudError, StoreError
from .metrics import CloudMetrics
from .service import CloudService, Outgoing
from .store import CloudStore

log = structlog.get_logger(__name__)

# Reconnect with full jitter between 0 and min(cap, base * 2**attempt) seconds.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0
# aiomqtt keeps a future per in-flight publish; bound them (DESIGN.md section 2).
MAX_INFLIGHT_PUBLISHES = 64
# Nothing tells a worker how fast a hub applies commands, and the broker queues at most
# max_queued_messages (mosquitto: 1000) for a client, dropping the rest even at QoS 1. Sent
# as fast as the broker takes them, a burst for one hub (10,000 windows in the bench) loses
# commands until the hub's next hello resyncs them. Queued commands therefore go out at most
# this often, well under what a hub applies (the resync on hello is paged and sent at once).
COMMAND_INTERVAL_SECONDS = 0.04
# An up/hello message is a batch of exactly one hub.hello envelope (docs/protocol.md).
HELLO_ENVELOPES = 1


def session_properties(expiry: int) -> Properties:
    """MQTT 5 CONNECT properties: the worker's session expiry and the largest packet it takes."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = expiry
    props.MaximumPacketSize = MAX_PACKET_BYTES
    return props


def ack_when_handled(client: aiomqtt.Client) -> None:
    """Make ``client`` hold back each PUBACK until ``acknowledge`` is called for the message.

    paho acks a QoS 1 message as it hands it over, before it is handled. aiomqtt 2.5 has no
    API for paho's manual acks (empicano/aiomqtt#345), so this reaches the paho client.
    """
    client._client.manual_ack_set(True)  # private: see the docstring


def acknowledge(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    """Send the PUBACK of a handled ``message`` (a lost connection drops it: sent again)."""
    if message.qos > 0:
        client._client.ack(message.mid, message.qos)  # private: see ack_when_handled


@dataclass
class CloudWorker:
    """One worker: subscribes, ingests, acks, answers hellos, publishes commands."""

    store: CloudStore
    service: CloudService
    mqtt: CloudMqttSection
    client_id: str
    group: str | None
    uniform: Callable[[float, float], float] = random.uniform
    backoff_cap: float = BACKOFF_CAP_SECONDS
    connected: bool = False
    ingested: int = 0
    # Prometheus counters (cloud_sync.metrics.CloudMetrics) when the daemon serves /metrics.
    metrics: CloudMetrics | None = None
    # Sessions that ended in an unexpected exception (a bug), not a broker error.
    crashes: int = 0
    # Messages left unacked because the store failed, and messages that tripped over a bug.
    store_failures: int = 0
    failed_messages: int = 0
    # The MQTT version of the current (or last) connection.
    version: Version | None = None
    _client: aiomqtt.Client | None = None
    _outbox: asyncio.Queue[Outgoing] = field(default_factory=asyncio.Queue)
    _inflight: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_INFLIGHT_PUBLISHES)
    )
    _version: VersionChoice = field(init=False)

    def __post_init__(self) -> None:
        self._version = VersionChoice(self.mqtt.protocol)

    def publish_later(self, messages: Sequence[Outgoing]) -> None:
        """Queue commands for the broker (sent once connected; the store keeps desired state)."""
        for message in messages:
            self._outbox.put_nowait(message)

    async def run(self) -> None:
        """Connect and serve until cancelled, reconnecting with backoff after any failure."""
        attempt = 0
        while True:
            try:
                async with self._connect() as client:
                    attempt = 0
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                self.connected = False
                if self._version.refused(exc):
                    log.warning("cloud.mqtt5_refused", fallback=Version.V311.value)
                    continue
                delay = self._delay(attempt)
                log.warning("cloud.mqtt_lost", error=str(exc), retry_in=round(delay, 2))
            except Exception:
                # A bug must not stop ingestion for good while the API keeps serving: log it
                # with its stack, back off (crashes never reset the backoff), connect again.
                self.connected = False
                self.crashes += 1
                delay = self._delay(max(attempt, self.crashes))
                log.exception(
                    "cloud.worker_crashed", crashes=self.crashes, retry_in=round(delay, 2)
                )
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # A cancel that reached us as a broker error (aiomqtt turns one into the
                # other mid-iteration) still stops the worker.
                raise asyncio.CancelledError
            attempt += 1
            await asyncio.sleep(delay)

    def _delay(self, attempt: int) -> float:
        return self.uniform(0, min(self.backoff_cap, BACKOFF_BASE_SECONDS * 2**attempt))

    @property
    def prefix(self) -> str:
        """The topic prefix shared with the hubs."""
        return self.mqtt.topic_prefix

    def _connect(self) -> aiomqtt.Client:
        mqtt = self.mqtt
        tls = None
        if mqtt.tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=None if mqtt.ca is None else str(mqtt.ca),
                certfile=None if mqtt.cert is None else str(mqtt.cert),
                keyfile=None if mqtt.key is None else str(mqtt.key),
                cert_reqs=ssl.CERT_REQUIRED,
            )
        password = None if mqtt.password is None else mqtt.password.get_secret_value()
        self.version = version = self._version.current
        v5 = version is Version.V5
        # A persistent session keeps this worker's share of the records queued while it
        # restarts: under MQTT 5 for worker_session_expiry seconds; under 3.1.1 until the
        # broker's persistent_client_expiration, if any (docs/operations.md).
        client = aiomqtt.Client(
            mqtt.host,
            mqtt.port,
            identifier=self.client_id,
            keepalive=mqtt.keepalive,
            username=mqtt.username,
            password=password,
            tls_params=tls,
            socket_options=SOCKET_OPTIONS,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            # paho refuses clean_session with v5, and clean_start or properties with 3.1.1.
            clean_session=None if v5 else False,
            clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,
            properties=session_properties(mqtt.worker_session_expiry) if v5 else None,
        )
        ack_when_handled(client)
        return client

    async def _serve(self, client: aiomqtt.Client) -> None:
        self._client = client
        for channel in (Channel.RECORDS, Channel.HELLO):
            await client.subscribe(cloud_subscription(self.prefix, channel, self.group), qos=1)
        raise_if_cancelled()  # a stop during the subscribes may have been dropped
        self.connected = True
        log.info(
            "cloud.mqtt_connected", client_id=self.client_id, group=self.group, mqtt=self.version
        )
        receiver = asyncio.create_task(self._receive(client))
        sender = asyncio.create_task(self._send_queued(client))
        try:
            done, _ = await asyncio.wait((receiver, sender), return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_all((receiver, sender))
            self.connected = False
            self._client = None
        for task in done:
            task.result()
        raise aiomqtt.MqttError("the message stream ended")

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self._handle(str(message.topic), bytes(message.payload))
            # Handled (committed; refused for good; or not stored, which the hub resends
            # unacked): only now may the broker forget it. A worker killed before this
            # point gets the message again when it reconnects.
            acknowledge(client, message)

    async def _send_queued(self, client: aiomqtt.Client) -> None:
        """Publish queued commands one at a time, one per COMMAND_INTERVAL_SECONDS at most."""
        while True:
            message = await self._outbox.get()
            try:
                await self._publish(client, [message])
            except aiomqtt.MqttError:
                # Lost with the connection: hubs get it from the desired state on their hello.
                log.warning("cloud.publish_lost", topic=message.topic)
                raise
            except Exception:
                # One message paho will not take must not stop the ones behind it; the hub
                # gets the desired state on its next hello all the same.
                log.exception("cloud.publish_failed", topic=message.topic)
            await asyncio.sleep(COMMAND_INTERVAL_SECONDS)

    async def _publish(self, client: aiomqtt.Client, messages: Sequence[Outgoing]) -> None:
        for message in messages:
            async with self._inflight:
                await client.publish(message.topic, message.payload, qos=1)

    async def _handle(self, topic_name: str, payload: bytes) -> None:
        """Handle one message; only a broker error escapes (it ends the connection)."""
        try:
            hub_id, channel = parse_topic(self.prefix, topic_name)
        except ProtocolError:
            log.warning("cloud.bad_topic", topic=topic_name)
            return
        try:
            if channel is Channel.RECORDS:
                await self._records(hub_id, payload)
            elif channel is Channel.HELLO:
                await self._hello(hub_id, payload)
        except aiomqtt.MqttError:
            raise
        except StoreError as exc:
            # Nothing was committed, so nothing was acked: the hub sends the batch again.
            self.store_failures += 1
            log.error("cloud.store_failed", hub_id=hub_id, channel=channel.value, error=str(exc))
        except (ProtocolError, CloudError) as exc:
            log.warning(
                "cloud.message_refused", hub_id=hub_id, channel=channel.value, error=str(exc)
            )
            if self.metrics is not None and channel is Channel.RECORDS:
                self.metrics.refused()
        except Exception:
            # A bug this message ran into: the next message must still be handled. An ack is
            # sent only after a commit, so whatever failed here was not acked.
            self.failed_messages += 1
            log.exception("cloud.message_failed", hub_id=hub_id, channel=channel.value)

    async def _records(self, hub_id: str, payload: bytes) -> None:
        started = time.monotonic()
        envelopes = decode_batch(payload)
        result = await self.store.ingest(hub_id, envelopes)
        self.ingested += result.stored
        if result.rejected or result.conflicts or result.broken_at is not None:
            log.warning(
                "cloud.ingest_problems",
                hub_id=hub_id,
                rejected=len(result.rejected),
                conflicts=len(result.conflicts),
                broken_at=result.broken_at,
                held=result.held,
            )
        # After the commit: an ack is the cloud's word that the records are durable.
        if self._client is not None:
            acks = self.service.ack_command(hub_id, result.acked)
            await self._publish(self._client, acks)
            if self.metrics is not None:
                self.metrics.sent(acks)
        if self.metrics is not None:
            self.metrics.ingested(result, time.monotonic() - started)

    async def _hello(self, hub_id: str, payload: bytes) -> None:
        envelopes = decode_batch(payload)
        if len(envelopes) != HELLO_ENVELOPES:
            raise MalformedError(f"up/hello carries one envelope, not {len(envelopes)}")
        hub = await self.store.get_hub(hub_id)
        keys = {hub_id: load_ed25519_public(hub.signing_key)}
        (envelope,) = envelopes
        hello = accept_hello(verify(envelope, keys), hub_id=hub_id)
        commands = await self.service.resync(hub_id, hello)
        log.info("cloud.hello", hub_id=hub_id, resync=len(commands))
        if self._client is not None:
            await self._publish(self._client, commands)
            if self.metrics is not None:
                self.metrics.sent(commands)
