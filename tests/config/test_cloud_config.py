"""The cloud config: the example loads, overrides use their own prefix, errors are plain."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud_sync.config import ConfigError, load_cloud_config

from .conftest import CLOUD_EXAMPLE, WriteConfig

MINIMAL_CLOUD = """\
[cloud]
state_dir = "cloud-state"
database_url = "sqlite+aiosqlite:///cloud.db"
signing_kid = "cloud-1"

[mqtt]
url = "mqtt://broker"
"""


def test_example_loads_as_shipped() -> None:
    config = load_cloud_config(CLOUD_EXAMPLE, {})
    assert config.cloud.state_dir == Path("/var/lib/lockhub-cloud")
    assert config.cloud.signing_kid == "cloud-2026"
    assert config.mqtt.shared_group == "lockhub-cloud"
    assert (config.api.host, config.api.port) == ("127.0.0.1", 8081)


def test_defaults_and_relative_state_dir(write_config: WriteConfig) -> None:
    path = write_config(MINIMAL_CLOUD)
    config = load_cloud_config(path, {})
    assert config.cloud.state_dir == path.parent.absolute() / "cloud-state"
    assert config.mqtt.topic_prefix == "lockhub/v1"
    assert config.mqtt.shared_group == "lockhub-cloud"
    assert config.api.listen == "127.0.0.1:8081"


def test_overrides_use_the_cloud_prefix(tmp_path: Path) -> None:
    env = {
        "LOCKHUB_CLOUD_CLOUD__STATE_DIR": str(tmp_path),
        "LOCKHUB_CLOUD_MQTT__SHARED_GROUP": "workers",
        "LOCKHUB_HUB__STATE_DIR": "/ignored",  # the hub's overrides never reach the cloud
        "LOCKHUB_CLOUD__COMMAND_KEYS": "ignored",
    }
    config = load_cloud_config(CLOUD_EXAMPLE, env)
    assert config.cloud.state_dir == tmp_path
    assert config.mqtt.shared_group == "workers"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (MINIMAL_CLOUD.replace("cloud-1", "cloud 1"), "cloud.signing_kid: must be 1-64"),
        (MINIMAL_CLOUD + "shared_group = 'a/b'\n", 'mqtt.shared_group: must be "" or 1-64'),
        (MINIMAL_CLOUD + "[api]\nlisten = 'x'\n", "api.listen: must be host:port"),
        (MINIMAL_CLOUD + "[apii]\n", "apii: unknown key (check the spelling); allowed: cloud,"),
        (MINIMAL_CLOUD.replace("[mqtt]", "[mqtt"), "line 6, column 6: invalid TOML"),
        (MINIMAL_CLOUD.replace('signing_kid = "cloud-1"\n', ""), "cloud.signing_kid: is required"),
    ],
)
def test_errors_name_file_and_field(write_config: WriteConfig, content: str, expected: str) -> None:
    path = write_config(content)
    with pytest.raises(ConfigError) as caught:
        load_cloud_config(path, {})
    assert f"{path}: {expected}" in str(caught.value)


def test_database_url_with_password_is_not_echoed(write_config: WriteConfig) -> None:
    path = write_config(
        MINIMAL_CLOUD.replace("sqlite+aiosqlite:///cloud.db", "postgres://u:hunter2@db/x")
    )
    with pytest.raises(ConfigError) as caught:
        load_cloud_config(path, {})
    assert "cloud.database_url: must start with sqlite+aiosqlite://" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "cloud.toml"
    with pytest.raises(ConfigError) as caught:
        load_cloud_config(path, {})
    assert caught.value.lines == (f"{path}: no such file",)
    assert caught.value.source == str(path)
