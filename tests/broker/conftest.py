"""A mosquitto running config/mosquitto/mosquitto.conf and its acl file, with test certificates."""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.broker.peer import Peer
from tests.broker.pki import CertificateAuthority, Credentials
from tests.infra.services import MosquittoBroker, free_port, missing_service, mosquitto_available

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "config" / "mosquitto"
EXAMPLE_CONF = EXAMPLE_DIR / "mosquitto.conf"
# The production ACL file itself, not a copy: the test proves the shipped example.
EXAMPLE_ACL = EXAMPLE_DIR / "acl"
HUBS = ("hub-a", "hub-b")
# Both cloud worker identities of the example acl file.
CLOUD_WORKERS = ("lockhub-cloud", "lockhub-cloud-2")


@dataclass(frozen=True, slots=True)
class Pki:
    """The broker's CA and certificates, plus a look-alike hub-a from a foreign CA."""

    ca: Path
    server: Credentials
    clients: dict[str, Credentials]
    foreign_hub_a: Credentials


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One CA for the session: a broker certificate and client certificates CN = identity."""
    root = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority("lockhub-test-ca", root / "ca")
    foreign = CertificateAuthority("someone-elses-ca", root / "foreign")
    return Pki(
        ca=ca.files.cert,
        server=ca.issue_server("broker"),
        clients={cn: ca.issue_client(cn) for cn in (*HUBS, *CLOUD_WORKERS)},
        foreign_hub_a=foreign.issue_client("hub-a"),
    )


def config_for_test(example: str, broker: MosquittoBroker, pki: Pki) -> str:
    """The example config with only its port, file paths, log sink and run-as user replaced."""
    replacements = {
        "listener": f"listener {broker.port} 127.0.0.1",
        "cafile": f"cafile {pki.ca}",
        "certfile": f"certfile {pki.server.cert}",
        "keyfile": f"keyfile {pki.server.key}",
        "acl_file": f"acl_file {EXAMPLE_ACL}",
        "persistence_location": f"persistence_location {broker.workdir}/",
        "log_dest": f"log_dest file {broker.log_path}",
    }
    lines, seen = [], set()
    for line in example.splitlines():
        option = line.split(maxsplit=1)[0] if line.strip() else ""
        if option in replacements:
            seen.add(option)
            line = replacements[option]  # noqa: PLW2901 - rewriting the line is the point
        lines.append(line)
    missing = replacements.keys() - seen
    assert not missing, f"example mosquitto.conf no longer sets {sorted(missing)}"
    # As root, mosquitto would switch to user "mosquitto", who cannot read tmp_path.
    lines.append(f"user {getpass.getuser()}")
    text = "\n".join(lines) + "\n"
    live = [ln for ln in text.splitlines() if not ln.startswith("#")]
    leftover = [ln for ln in live if re.search(r"\s/(etc|var)/", ln)]
    assert not leftover, f"production paths left in the test config: {leftover}"
    return text


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[MosquittoBroker]:
    """mosquitto with the example's TLS listener (client certificates required) and ACL."""
    if not mosquitto_available():
        missing_service("mosquitto binary not found (apt-get install mosquitto)")
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto", port=free_port())
    broker.config_text = config_for_test(EXAMPLE_CONF.read_text(), broker, pki)
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


PeerFactory = Callable[..., Peer]


@pytest.fixture
def peer(broker: MosquittoBroker, pki: Pki) -> Iterator[PeerFactory]:
    """``peer("hub-a")`` is a connected client with hub-a's certificate; closed after the test.

    ``identity`` may also be other Credentials or None (no client certificate).
    """
    opened: list[Peer] = []

    def make(identity: str | Credentials | None, *, connect: bool = True, **kwargs: object) -> Peer:
        creds = pki.clients[identity] if isinstance(identity, str) else identity
        made = Peer(broker.port, pki.ca, creds, **kwargs)  # type: ignore[arg-type]
        opened.append(made)
        return made.connect() if connect else made

    yield make
    for made in opened:
        made.close()
