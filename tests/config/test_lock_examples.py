"""Every commented lock example in config/gateway.example.toml is a config the drivers accept."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from gateway.config import load_gateway_config
from gateway.locks.credentials import CredentialStore
from gateway.locks.registry import build_driver

from .conftest import GATEWAY_EXAMPLE


def test_the_commented_lock_examples_build(tmp_path: Path) -> None:
    pin = tmp_path / "back-door.pin"
    pin.write_text("4711\n")
    pin.chmod(0o600)
    text = GATEWAY_EXAMPLE.read_text()
    examples = text[text.index("# [[locks]]") :]
    uncommented = "\n".join(
        line.removeprefix("# ") for line in examples.splitlines() if line.startswith("# ")
    )
    config_text = text.replace(examples, uncommented).replace(
        "/etc/lockhub/back-door.pin", str(pin)
    )
    path = tmp_path / "gateway.toml"
    path.write_text(config_text)
    config = load_gateway_config(path, env={"LOCKHUB_HUB__STATE_DIR": str(tmp_path / "state")})
    # Cloud accounts are paired before the hub runs (`lockhub gateway pair schlage`).
    CredentialStore.open(config.hub.state_dir).save(
        "side-door", "schlage", {"username": "a@b.example", "password": "pw", "device_id": "d1"}
    )
    drivers = {lock.driver for lock in config.locks}
    assert drivers == {"sim", "nuki_ble", "nuki_bridge", "yale_ble", "yale_cloud", "schlage"}
    for lock in config.locks:
        driver = build_driver(
            lock,
            now=lambda: datetime.now(UTC),
            sleep=asyncio.sleep,
            source=str(path),
            state_dir=config.hub.state_dir,
            ble=lambda: None,  # type: ignore[arg-type,return-value]
        )
        assert driver.lock_id == lock.id
