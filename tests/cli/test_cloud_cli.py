"""``lockhub cloud`` commands through the gateway's dispatcher."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from cloud_sync.cli import main as cloud_main
from cloud_sync.protocol.envelope import Signer
from cloud_sync.store import CloudStore
from gateway.cli import main
from tests.cloud.conftest import HUB_ID, HubChain, HubKeys

from .conftest import CLOUD_EXAMPLE

CONFIG = ["--config", str(CLOUD_EXAMPLE)]


def test_init_then_identity(cloud_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cloud", "init", *CONFIG]) == 0
    assert "cloud-2026 created in" in capsys.readouterr().out
    assert main(["cloud", "identity", *CONFIG]) == 0
    first = json.loads(capsys.readouterr().out)
    assert set(first) == {"kid", "signing_key"}
    assert first["kid"] == "cloud-2026"
    assert main(["cloud", "init", *CONFIG]) == 0
    assert "already exists; nothing changed" in capsys.readouterr().out
    assert main(["cloud", "identity", *CONFIG]) == 0
    assert json.loads(capsys.readouterr().out) == first
    assert (cloud_state / "command-signing.key").stat().st_mode & 0o777 == 0o600


def test_identity_before_init(cloud_state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cloud", "identity", *CONFIG]) == 1
    assert "run `lockhub cloud init --config FILE` first" in capsys.readouterr().err


def test_config_error_exits_78(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cloud.toml"
    path.write_text(CLOUD_EXAMPLE.read_text().replace("cloud-2026", "cloud 2026"))
    assert main(["cloud", "init", "--config", str(path)]) == 78
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"lockhub: error: {path}: cloud.signing_kid: must be 1-64")
    assert err[1].startswith("lockhub: hint: compare with config/cloud.example.toml")


def test_config_path_from_environment(
    cloud_state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOCKHUB_CLOUD_CONFIG", str(CLOUD_EXAMPLE))
    assert main(["cloud", "init"]) == 0
    assert str(cloud_state) in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv", [["cloud"], ["cloud", "nope"], ["cloud", "hub", "add"], ["cloud", "keys"]]
)
def test_unknown_or_incomplete_commands_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert "usage: lockhub cloud" in capsys.readouterr().err


def test_cloud_cli_reads_process_arguments(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["lockhub cloud", "--help"])
    assert cloud_main() == 0
    assert "usage: lockhub cloud" in capsys.readouterr().out


def test_keys_create_prints_only_the_key_on_stdout(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LOCKHUB_CLOUD_CLOUD__STATE_DIR": str(tmp_path),
        "LOCKHUB_CLOUD_CLOUD__DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cloud.db",
    }
    base = [sys.executable, "-m", "gateway.cli", "cloud"]
    for command in (["init"], ["migrate"], ["keys", "create", "--tenant", "acme"]):
        done = subprocess.run(
            [*base, *command, "--config", str(CLOUD_EXAMPLE)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"lhk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\n", done.stdout)
    assert "api_key.created" in done.stderr


@pytest.fixture
def cloud_db(cloud_state: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An initialised, migrated cloud (state dir and SQLite database under tmp_path)."""
    url = f"sqlite+aiosqlite:///{cloud_state.parent / 'cloud.db'}"
    monkeypatch.setenv("LOCKHUB_CLOUD_CLOUD__DATABASE_URL", url)
    assert main(["cloud", "init", *CONFIG]) == 0
    assert main(["cloud", "migrate", *CONFIG]) == 0
    return url


async def _serves(url: str, hub_id: str, tenant: str) -> bool:
    async with await CloudStore.open(url) as store:
        await store.get_hub(hub_id)  # UnknownHubError if it was not registered
        return await store.hub_serves(hub_id, tenant)


def test_hub_add_as_design_md_writes_it_then_a_tenant(
    cloud_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = HubKeys(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())
    # DESIGN.md section 7: `lockhub cloud hub add --config F --id H --signing-key K
    # --sealing-key K2`, no tenant.
    add = [
        "cloud", "hub", "add", *CONFIG, "--id", "hub-0001",
        f"--signing-key={keys.signing_b64}", f"--sealing-key={keys.sealing_b64}",
    ]  # fmt: skip
    capsys.readouterr()
    assert main(add) == 0
    out, err = capsys.readouterr()
    assert "hub hub-0001 registered; no tenant may create windows on it yet" in out
    assert "--tenant T" in err
    assert not asyncio.run(_serves(cloud_db, "hub-0001", "acme"))
    # Granting later is `hub add` again with the same keys and --tenant (as before).
    assert main([*add, "--tenant", "acme", "--tenant", "globex"]) == 0
    assert "hub hub-0001 registered for tenants acme, globex" in capsys.readouterr().out
    assert asyncio.run(_serves(cloud_db, "hub-0001", "acme"))
    assert asyncio.run(_serves(cloud_db, "hub-0001", "globex"))


async def _broken_chain(url: str, keys: HubKeys) -> None:
    async with await CloudStore.open(url) as store:
        await store.add_hub(HUB_ID, keys.signing_b64, keys.sealing_b64)
        chain = HubChain(Signer(HUB_ID, keys.signing))
        await store.ingest(HUB_ID, chain.events(2))
        event = {"lock_id": "front-door", "event": "locked", "unattributed": False}
        forged = chain.record("lock.event", {**event, "details": {}}, prev_hash="f" * 64)
        await store.ingest(HUB_ID, [forged, *chain.events(2)])


def test_accept_chain_re_anchors_a_broken_chain_once(
    cloud_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = HubKeys(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())
    asyncio.run(_broken_chain(cloud_db, keys))
    accept = ["cloud", "hub", "accept-chain", *CONFIG, "--id", HUB_ID]
    capsys.readouterr()
    assert main([*accept, "--from-seq", "0"]) == 2
    assert "must be a record seq" in capsys.readouterr().err
    assert main([*accept, "--from-seq", "2"]) == 1
    assert "must be at least 3" in capsys.readouterr().err
    assert main([*accept, "--from-seq", "3"]) == 0
    out = capsys.readouterr().out
    assert f"hub {HUB_ID} (epoch 1) continues from seq 3: 3 held-back records chained" in out
    assert main([*accept, "--from-seq", "3"]) == 1
    assert "is not broken" in capsys.readouterr().err
    assert main(["cloud", "hub", "accept-chain", *CONFIG, "--id", "hub-9", "--from-seq", "1"]) == 1
    assert "no hub 'hub-9'" in capsys.readouterr().err
