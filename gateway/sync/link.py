"""The hub's MQTT link: commands in, records out, acks back, resync on every connect.

One connection at a time, under the hub id with a persistent session (MQTT 5 session expiry,
or 3.1.1 ``clean_session = false``), so commands and acks published while the hub is away wait
at the broker. On connect the hub subscribes, publishes its retained ``online`` status and a
signed ``hub.hello``, then pumps the outbox from the oldest unacked record, and refreshes the
status's health summary every minute and at once when a lock, the clock or the outbox alert
changes. A broker error ends the connection, never the daemon: the link backs off (full
jitter) and dials again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any

import aiomqtt
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.protocol import topics
from cloud_sync.protocol.envelope import Signer, decode_batch, verify
from cloud_sync.protocol.errors import ProtocolError
from cloud_sync.protocol.policy import accept_ack
from cloud_sync.protocol.tomlconfig import MqttSection

from ..access.engine import AccessEngine
from ..access.intake import CommandIntake
from ..errors import GatewayError
from ..store import Store, StoreError
from .announce import Health, health_of, hello_batch, notable, status_message
from .backoff import Backoff
from .client import Version, VersionChoice, cancel_all, make_client, raise_if_cancelled
from .outbox import OutboxPump, OutboxWatch
from .settings import SyncSettings

log = structlog.get_logger(__name__)

# A full 256 KiB batch over a 64 kbit/s site uplink takes about 33 s to leave; PUBACK follows.
PUBLISH_TIMEOUT_SECONDS = 60.0
# On shutdown the hub says "offline" itself (a clean disconnect suppresses the Last Will);
# a broker that cannot take one small message in this time gets none.
GOODBYE_SECONDS = 2.0
# SUBACK reason codes from 0x80 up are refusals (MQTT 5 section 3.9.3; 3.1.1 sends 0x80).
_SUBACK_FAILURE = 0x80
# The retained status's health summary is refreshed this often (one small message a minute
# per hub), and looked at this often for a notable change (in memory only: no store reads).
STATUS_REFRESH_SECONDS = 60.0
STATUS_CHECK_SECONDS = 1.0
# The hello is said on every connect and again this often. The cloud answers a hello only
# when the hub's windows differ from its desired set, so the hub cannot tell a hello that
# reached no worker (sent after a broker crash lost the workers' subscriptions, before they
# subscribed again) from one that needed no answer: repeating it bounds how long commands
# lost with the crash wait. A matching hello costs the cloud one digest.
HELLO_REPEAT_SECONDS = 900.0


class SyncError(GatewayError):
    """Base of the link's own errors; each ends one connection and is retried."""


class SubscriptionRefusedError(SyncError):
    """The broker refused a subscription (an ACL, usually): fix the broker's config."""


async def first_exit(*coros: Coroutine[Any, Any, None]) -> None:
    """Run ``coros`` until the first one returns or raises; cancel the rest; re-raise."""
    tasks = [asyncio.create_task(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_all(tasks)
    for task in done:
        task.result()


class HubLink:
    """Keeps one hub connected to its broker and its outbox flowing to the cloud."""

    def __init__(
        self,
        *,
        mqtt: MqttSection,
        protocol: str,
        engine: AccessEngine,
        intake: CommandIntake,
        store: Store,
        signer: Signer,
        command_keys: Mapping[str, Ed25519PublicKey],
        settings: SyncSettings,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.hub_id = signer.kid
        self._mqtt, self._engine, self._intake, self._store = mqtt, engine, intake, store
        self._signer, self._keys, self.settings = signer, command_keys, settings
        self._monotonic, self._sleep = monotonic, sleep
        self._version = VersionChoice(protocol)
        self.backoff = Backoff(settings.backoff_base, settings.backoff_cap, uniform)
        self.pump = OutboxPump(store, settings, monotonic)
        self.watch = OutboxWatch(
            store, settings, lambda: engine.clock.status().as_record(), engine.clock.now
        )
        prefix = mqtt.topic_prefix
        self._topics = {
            channel: topics.topic(prefix, self.hub_id, channel) for channel in topics.Channel
        }
        self.connected = False
        self.version: Version | None = None
        self.connects = 0
        self.last_ack_at: float | None = None
        # Ack messages refused (malformed, bad signature, another hub's): nothing was acked.
        self.refused_acks = 0
        # Seconds between refreshes of the retained online status (tests shorten it).
        self.status_interval = STATUS_REFRESH_SECONDS
        self.statuses_published = 0
        # Seconds between repeated hellos (tests shorten it).
        self.hello_interval = HELLO_REPEAT_SECONDS
        self.hellos_published = 0
        self._since: float | None = None

    def clock(self) -> float:
        """The link's monotonic clock (``last_ack_at`` is on it)."""
        return self._monotonic()

    def topic(self, channel: topics.Channel) -> str:
        """This hub's topic for ``channel``."""
        return self._topics[channel]

    async def run(self) -> None:
        """Watch the outbox and stay connected until cancelled; broker errors never escape."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self.watch.run())
            group.create_task(self._dial_forever())

    async def _dial_forever(self) -> None:
        while True:
            self._since = None
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                if self._version.refused(exc):
                    log.warning("sync.mqtt5_refused", fallback=Version.V311.value)
                    continue
                log.warning("sync.disconnected", error=str(exc))
            except (SyncError, StoreError) as exc:
                log.error("sync.failed", error=str(exc), kind=type(exc).__name__)
            except Exception:
                # A bug in the link must not stop door access: log it, back off, dial again.
                log.exception("sync.crashed")
            finally:
                self.connected = False
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # A cancel that reached us as a broker error (aiomqtt turns one into the
                # other mid-iteration) still stops the link.
                raise asyncio.CancelledError
            if self._was_stable():
                self.backoff.reset()
            delay = self.backoff.next_delay()
            log.info("sync.retry", delay_s=round(delay, 3), attempt=self.backoff.attempt)
            await self._sleep(delay)

    def _was_stable(self) -> bool:
        """Whether the connection that just ended lasted long enough to reset the backoff."""
        since = self._since
        return since is not None and self._monotonic() - since >= self.settings.stable_after

    async def _session(self) -> None:
        version = self._version.current
        connected_at = self._engine.clock.now()
        will = aiomqtt.Will(
            self.topic(topics.Channel.STATUS),
            status_message(
                hub_id=self.hub_id,
                state="offline",
                connected_at=connected_at,
                reason="connection_lost",
            ),
            qos=1,
            retain=True,
        )
        async with make_client(self._mqtt, self.hub_id, version, will) as client:
            self._since, self.connected, self.version = self._monotonic(), True, version
            self.connects += 1
            log.info("sync.connected", host=self._mqtt.host, port=self._mqtt.port, mqtt=version)
            try:
                await self._subscribe(client)
                await self._announce(client, connected_at)
                raise_if_cancelled()  # a stop during the two above may have been dropped
                await first_exit(
                    self._receive(client),
                    self.pump.run(self._publisher(client)),
                    self._keep_status(client, connected_at),
                    self._keep_hello(client),
                )
            except asyncio.CancelledError:
                await self._goodbye(client, connected_at)
                raise

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        wanted = topics.hub_subscriptions(self._mqtt.topic_prefix, self.hub_id)
        granted = await client.subscribe([(t, 1) for t in wanted])
        codes = [rc.value if isinstance(rc, ReasonCode) else rc for rc in granted]
        if any(code >= _SUBACK_FAILURE for code in codes):
            raise SubscriptionRefusedError(f"broker refused subscriptions: {codes}")

    def _health(self) -> Health:
        return health_of(
            self._engine, self.watch.depth, self._version.current.value, self.watch.alert
        )

    async def _publish_status(
        self, client: aiomqtt.Client, connected_at: datetime, health: Health
    ) -> None:
        status = status_message(
            hub_id=self.hub_id, state="online", connected_at=connected_at, health=health
        )
        await client.publish(
            self.topic(topics.Channel.STATUS),
            status,
            qos=1,
            retain=True,
            timeout=PUBLISH_TIMEOUT_SECONDS,
        )
        self.statuses_published += 1

    async def _keep_status(self, client: aiomqtt.Client, connected_at: datetime) -> None:
        """Refresh the retained status every ``status_interval`` and on a notable change."""
        shown, at = notable(self._health()), self._monotonic()
        while True:
            await asyncio.sleep(min(STATUS_CHECK_SECONDS, self.status_interval))
            health = self._health()
            if notable(health) != shown or self._monotonic() - at >= self.status_interval:
                await self._publish_status(client, connected_at, health)
                shown, at = notable(health), self._monotonic()
                log.debug("sync.status_refreshed", outbox_depth=health["outbox_depth"])

    async def _announce(self, client: aiomqtt.Client, connected_at: datetime) -> None:
        self.watch.depth = depth = await self._store.outbox_depth()
        await self._publish_status(client, connected_at, self._health())
        await self._hello(client)
        log.info("sync.announced", outbox_depth=depth)

    async def _hello(self, client: aiomqtt.Client) -> None:
        hello = hello_batch(
            signer=self._signer,
            engine=self._engine,
            last_command_seq=self._intake.last_seq(),
            head_seq=(await self._store.chain_head()).seq,
            now=self._engine.clock.now(),
        )
        await client.publish(self.topic(topics.Channel.HELLO), hello, qos=1)
        self.hellos_published += 1

    async def _keep_hello(self, client: aiomqtt.Client) -> None:
        """Say the hello again every ``hello_interval`` while connected."""
        while True:
            await asyncio.sleep(self.hello_interval)
            await self._hello(client)
            log.debug("sync.hello_repeated")

    def _publisher(self, client: aiomqtt.Client) -> Callable[[bytes], Awaitable[None]]:
        records_topic = self.topic(topics.Channel.RECORDS)

        async def publish(batch: bytes) -> None:
            await client.publish(records_topic, batch, qos=1, timeout=PUBLISH_TIMEOUT_SECONDS)

        return publish

    async def _receive(self, client: aiomqtt.Client) -> None:
        commands, acks = self.topic(topics.Channel.COMMANDS), self.topic(topics.Channel.ACKS)
        async for message in client.messages:
            payload = message.payload
            data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
            if message.topic.matches(commands):
                results = await self._intake.handle(data)
                applied = sum(r.result == "applied" for r in results)
                log.info("sync.commands", count=len(results), applied=applied)
            elif message.topic.matches(acks):
                await self.on_acks(data)
            else:
                log.warning("sync.unexpected_topic", topic=message.topic.value)
        raise SyncError("the message stream ended")

    async def on_acks(self, data: bytes) -> int:
        """Apply every verified ack in one ``down/acks`` message; return records newly acked."""
        try:
            envelopes = decode_batch(data)
        except ProtocolError as exc:
            log.warning("sync.ack_refused", reason="malformed", detail=str(exc)[:200])
            self.refused_acks += 1
            return 0
        newly = 0
        for envelope in envelopes:
            try:
                ack = accept_ack(verify(envelope, self._keys), hub_id=self.hub_id)
            except ProtocolError as exc:
                # A broker (or anyone who can publish) must not make the hub forget records.
                log.warning("sync.ack_refused", reason=type(exc).__name__, detail=str(exc)[:200])
                self.refused_acks += 1
                continue
            newly += await self._store.ack(ack.body.acked)
            self.last_ack_at = self._monotonic()
            self.pump.acked(max((last for _, last in ack.body.acked), default=0))
        log.debug("sync.acked", records=newly)
        return newly

    async def _goodbye(self, client: aiomqtt.Client, connected_at: datetime) -> None:
        status = status_message(
            hub_id=self.hub_id, state="offline", connected_at=connected_at, reason="shutdown"
        )
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await client.publish(
                self.topic(topics.Channel.STATUS),
                status,
                qos=1,
                retain=True,
                timeout=GOODBYE_SECONDS,
            )
