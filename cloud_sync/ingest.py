"""The cloud's MQTT worker: records in (verified, stored, acked), hellos answered, commands out.

Several workers can run against one broker: they share ``$share/<group>/...`` subscriptions,
so each message reaches one of them, and the store's ingest is idempotent on (hub, epoch,
seq), so a message redelivered to another worker after a crash is stored once. A worker acks
only what its ingest reported durably stored, after the commit.
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

from cloud_sync.protocol.envelope import decode_batch, verify
from cloud_sync.protocol.errors import ProtocolError
from cloud_sync.protocol.keys import load_ed25519_public
from cloud_sync.protocol.policy import accept_hello
from cloud_sync.protocol.tomlconfig import MqttSection
from cloud_sync.protocol.topics import Channel, cloud_subscription, parse_topic

from .errors import CloudError
from .metrics import CloudMetrics
from .service import CloudService, Outgoing
from .store import CloudStore

log = structlog.get_logger(__name__)

# Reconnect with full jitter between 0 and min(cap, base * 2**attempt) seconds.
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 30.0
# aiomqtt keeps a future per in-flight publish; bound them (DESIGN.md section 2).
MAX_INFLIGHT_PUBLISHES = 64


@dataclass
class CloudWorker:
    """One worker: subscribes, ingests, acks, answers hellos, publishes commands."""

    store: CloudStore
    service: CloudService
    mqtt: MqttSection
    client_id: str
    group: str | None
    uniform: Callable[[float, float], float] = random.uniform
    backoff_cap: float = BACKOFF_CAP_SECONDS
    connected: bool = False
    ingested: int = 0
    # Prometheus counters (cloud_sync.metrics.CloudMetrics) when the daemon serves /metrics.
    metrics: CloudMetrics | None = None
    _client: aiomqtt.Client | None = None
    _outbox: asyncio.Queue[Outgoing] = field(default_factory=asyncio.Queue)
    _inflight: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_INFLIGHT_PUBLISHES)
    )

    def publish_later(self, messages: Sequence[Outgoing]) -> None:
        """Queue commands for the broker (sent once connected; the store keeps desired state)."""
        for message in messages:
            self._outbox.put_nowait(message)

    async def run(self) -> None:
        """Connect and serve until cancelled, reconnecting with backoff."""
        attempt = 0
        while True:
            try:
                async with self._connect() as client:
                    attempt = 0
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                self.connected = False
                delay = self.uniform(0, min(self.backoff_cap, BACKOFF_BASE_SECONDS * 2**attempt))
                attempt += 1
                log.warning("cloud.mqtt_lost", error=str(exc), retry_in=round(delay, 2))
                await asyncio.sleep(delay)

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
        # A persistent session (MQTT 3.1.1 clean_session False) keeps this worker's share of
        # the records queued while it restarts; nothing here needs MQTT 5.
        return aiomqtt.Client(
            mqtt.host,
            mqtt.port,
            identifier=self.client_id,
            clean_session=False,
            keepalive=mqtt.keepalive,
            username=mqtt.username,
            password=password,
            tls_params=tls,
        )

    async def _serve(self, client: aiomqtt.Client) -> None:
        self._client = client
        for channel in (Channel.RECORDS, Channel.HELLO):
            await client.subscribe(cloud_subscription(self.prefix, channel, self.group), qos=1)
        self.connected = True
        log.info("cloud.mqtt_connected", client_id=self.client_id, group=self.group)
        sender = asyncio.create_task(self._send_queued(client))
        try:
            async for message in client.messages:
                await self._handle(str(message.topic), bytes(message.payload))
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            self.connected = False

    async def _send_queued(self, client: aiomqtt.Client) -> None:
        while True:
            message = await self._outbox.get()
            try:
                await self._publish(client, [message])
            except aiomqtt.MqttError:
                # Lost with the connection: hubs get it from the desired state on their hello.
                log.warning("cloud.publish_lost", topic=message.topic)
                raise

    async def _publish(self, client: aiomqtt.Client, messages: Sequence[Outgoing]) -> None:
        for message in messages:
            async with self._inflight:
                await client.publish(message.topic, message.payload, qos=1)

    async def _handle(self, topic_name: str, payload: bytes) -> None:
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
        except (ProtocolError, CloudError) as exc:
            log.warning(
                "cloud.message_refused", hub_id=hub_id, channel=channel.value, error=str(exc)
            )
            if self.metrics is not None and channel is Channel.RECORDS:
                self.metrics.refused()

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
        hub = await self.store.get_hub(hub_id)
        keys = {hub_id: load_ed25519_public(hub.signing_key)}
        (envelope,) = decode_batch(payload)
        hello = accept_hello(verify(envelope, keys), hub_id=hub_id)
        commands = await self.service.resync(hub_id, hello)
        log.info("cloud.hello", hub_id=hub_id, resync=len(commands))
        if self._client is not None:
            await self._publish(self._client, commands)
            if self.metrics is not None:
                self.metrics.sent(commands)
