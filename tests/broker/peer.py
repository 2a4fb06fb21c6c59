"""A paho MQTT client over TLS that records what the broker answers and delivers."""

from __future__ import annotations

import contextlib
import queue
import ssl
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from tests.broker.pki import Credentials

# Loopback delivery takes milliseconds; 5 s absorbs a loaded 2-core CI box.
DELIVERY_TIMEOUT = 5.0
# Keepalive is irrelevant for these short tests; paho's default is fine but stated here.
KEEPALIVE = 60


class Peer:
    """One MQTT connection with a client certificate; answers are awaited, not slept for."""

    def __init__(
        self,
        port: int,
        ca: Path,
        identity: Credentials | None,
        *,
        protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5,
        client_id: str = "",
    ) -> None:
        self.port = port
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol
        )
        self.client.tls_set(
            ca_certs=str(ca),
            certfile=str(identity.cert) if identity else None,
            keyfile=str(identity.key) if identity else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._answers: dict[tuple[str, int], object] = {}
        self._answered = threading.Condition()
        self._outcome: str | None = None
        self._settled = threading.Event()
        self.disconnects = 0
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    # paho callbacks run on its network thread; they only record and notify.
    def _on_connect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        self._settle("connected" if not rc.is_failure else f"refused: {rc}")

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        self.disconnects += 1
        self._settle(f"disconnected: {rc}")

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, mid: int, rcs: list[ReasonCode], _p: object
    ) -> None:
        self._answer(("suback", mid), [rc.value for rc in rcs])

    def _on_publish(
        self, _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: object
    ) -> None:
        self._answer(("puback", mid), rc.value)

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        self.messages.put((message.topic, message.payload))

    def _settle(self, outcome: str) -> None:
        if self._outcome is None:
            self._outcome = outcome
        self._settled.set()

    def _answer(self, key: tuple[str, int], value: object) -> None:
        with self._answered:
            self._answers[key] = value
            self._answered.notify_all()

    def _wait_answer(self, key: tuple[str, int]) -> object:
        with self._answered:
            if not self._answered.wait_for(lambda: key in self._answers, DELIVERY_TIMEOUT):
                raise AssertionError(f"no {key[0]} for mid {key[1]} within {DELIVERY_TIMEOUT} s")
            return self._answers.pop(key)

    def will(self, topic: str, payload: bytes) -> Peer:
        """Set the Last Will (QoS 1, retained, as a hub's up/status); call before connect."""
        self.client.will_set(topic, payload, qos=1, retain=True)
        return self

    def try_connect(self) -> str:
        """Connect and report "connected", or how the broker refused (TLS failures included)."""
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=KEEPALIVE)
        except (ssl.SSLError, OSError) as exc:
            return f"failed: {exc}"
        self.client.loop_start()
        if not self._settled.wait(DELIVERY_TIMEOUT):
            return "no answer"
        return self._outcome or "no answer"

    def connect(self) -> Peer:
        """Connect, or fail the test with the broker's answer."""
        outcome = self.try_connect()
        assert outcome == "connected", outcome
        return self

    def subscribe(self, *filters: str) -> list[int]:
        """Subscribe at QoS 1; return the SUBACK reason codes (1 = granted QoS 1)."""
        _, mid = self.client.subscribe([(f, 1) for f in filters])
        codes = self._wait_answer(("suback", mid))
        assert isinstance(codes, list)
        return codes

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        """Publish and wait until the broker took it; return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        code = self._wait_answer(("puback", info.mid))
        assert isinstance(code, int)
        return code

    def receive_until(self, fence: bytes) -> list[tuple[str, bytes]]:
        """Everything delivered before the message whose payload is ``fence``.

        mosquitto handles packets one at a time and delivers to a subscriber in order, so a
        message that was not delivered before a later fence message is never delivered.
        """
        got: list[tuple[str, bytes]] = []
        while True:
            try:
                topic, payload = self.messages.get(timeout=DELIVERY_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"fence {fence!r} not received; got {got}") from None
            if payload == fence:
                return got
            got.append((topic, payload))

    def drop(self) -> None:
        """Vanish without DISCONNECT (power cut): the broker fires the Last Will."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def close(self) -> None:
        """Disconnect cleanly (no Last Will) and stop the network thread."""
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()
