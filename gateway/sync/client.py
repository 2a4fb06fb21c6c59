"""How the hub dials its broker: MQTT version, persistent session, TLS, login, Last Will."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import aiomqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud_sync.protocol.envelope import MAX_BATCH_BYTES
from cloud_sync.protocol.tomlconfig import MqttSection

# The broker keeps the hub's session (subscriptions, queued commands and acks) this long
# while the hub is away: a week covers a site offline over a long holiday weekend and more.
SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
# A CONNACK (or a refused TCP/TLS handshake) comes back within a few seconds on any link
# that can carry the hub's traffic at all.
CONNECT_TIMEOUT_SECONDS = 10.0
# Room for the fixed header, topic and properties around the largest batch.
_PACKET_OVERHEAD = 1024
MAX_PACKET_BYTES = MAX_BATCH_BYTES + _PACKET_OVERHEAD
# paho's own outgoing queue: the pump never has more than its in-flight batches plus status
# and hello outstanding, so a full queue means something is wrong, not a burst.
MAX_QUEUED_OUTGOING = 64
# Nagle's algorithm holds a small packet back until the previous one is acknowledged; with
# the peer's delayed ACK that costs ~40 ms per MQTT exchange (a PUBLISH after its PUBACK, a
# command after the last). Every packet here is a complete message: send it at once.
SOCKET_OPTIONS = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
# Python 3.11's asyncio.wait_for, which aiomqtt awaits every connect, subscribe and publish
# with, drops a cancel that arrives as the awaited operation completes (CPython gh-86296,
# fixed in 3.12): the task goes on with cancelling() set, and a shutdown that waits for it
# waits forever. Cancels are therefore checked after those awaits and repeated this often.
CANCEL_REPEAT_SECONDS = 0.1
# CONNACK codes that mean "I do not speak this MQTT version": 0x01 from a 3.1.1 broker (paho
# maps it to 132), 0x84 from a v5 broker with v5 switched off.
_UNSUPPORTED_VERSION = frozenset({1, 0x84})


class Version(StrEnum):
    """The MQTT version of one connection."""

    V5 = "5"
    V311 = "3.1.1"


@dataclass(slots=True)
class VersionChoice:
    """``auto`` starts with MQTT 5 and falls back to 3.1.1 for good once a broker refuses it."""

    setting: str = "auto"
    fell_back: bool = False

    @property
    def current(self) -> Version:
        """The version to dial next."""
        if self.setting == Version.V311 or self.fell_back:
            return Version.V311
        return Version.V5

    def refused(self, exc: BaseException) -> bool:
        """Note a failed connect; True when it was a version refusal and we now fall back."""
        if self.setting != "auto" or self.fell_back or not refuses_version(exc):
            return False
        self.fell_back = True
        return True


def refuses_version(exc: BaseException) -> bool:
    """Whether a connect failure is the broker refusing the MQTT version."""
    if not isinstance(exc, aiomqtt.MqttCodeError):
        return False
    rc = exc.rc
    value = rc.value if isinstance(rc, ReasonCode) else rc
    return value in _UNSUPPORTED_VERSION


def connect_properties() -> Properties:
    """MQTT 5 CONNECT properties: a session that outlives the connection, a packet cap."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
    props.MaximumPacketSize = MAX_PACKET_BYTES
    return props


def tls_parameters(mqtt: MqttSection) -> aiomqtt.TLSParameters | None:
    """TLS settings for ``mqtts://`` (system CAs unless ``ca`` is set), else None."""
    if not mqtt.tls:
        return None
    return aiomqtt.TLSParameters(
        ca_certs=str(mqtt.ca) if mqtt.ca else None,
        certfile=str(mqtt.cert) if mqtt.cert else None,
        keyfile=str(mqtt.key) if mqtt.key else None,
    )


def make_client(
    mqtt: MqttSection, client_id: str, version: Version, will: aiomqtt.Will
) -> aiomqtt.Client:
    """An unconnected client with a persistent session under ``client_id`` (the hub id)."""
    password = mqtt.password.get_secret_value() if mqtt.password is not None else None
    v5 = version is Version.V5
    return aiomqtt.Client(
        mqtt.host,
        mqtt.port,
        identifier=client_id,
        username=mqtt.username,
        password=password,
        keepalive=mqtt.keepalive,
        will=will,
        tls_params=tls_parameters(mqtt),
        timeout=CONNECT_TIMEOUT_SECONDS,
        max_queued_outgoing_messages=MAX_QUEUED_OUTGOING,
        socket_options=SOCKET_OPTIONS,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        # paho refuses clean_session with v5 and clean_start/properties with 3.1.1.
        clean_session=None if v5 else False,
        clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,
        properties=connect_properties() if v5 else None,
    )


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was cancelled and the cancel got dropped."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until each has ended, cancelling again any that went on."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=CANCEL_REPEAT_SECONDS)
    # Every task is done: this only collects their exceptions, so none is reported unread.
    await asyncio.gather(*tasks, return_exceptions=True)
