"""LOCKHUB_<SECTION>__<FIELD> overrides single values of the file; errors name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import load_gateway_config
from gateway.errors import ConfigError

from .conftest import GATEWAY_EXAMPLE, MINIMAL_GATEWAY, WriteConfig


def test_state_dir_and_url_from_environment(tmp_path: Path) -> None:
    env = {"LOCKHUB_HUB__STATE_DIR": str(tmp_path), "LOCKHUB_MQTT__URL": "mqtts://b:8884"}
    config = load_gateway_config(GATEWAY_EXAMPLE, env)
    assert config.hub.state_dir == tmp_path
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("b", 8884, True)


def test_values_are_converted_like_the_file(write_config: WriteConfig) -> None:
    env = {"LOCKHUB_MQTT__KEEPALIVE": "30", "lockhub_access__grace_seconds": "0"}
    config = load_gateway_config(write_config(MINIMAL_GATEWAY), env)
    assert config.mqtt.keepalive == 30
    assert config.access.grace_seconds == 0  # a section absent from the file is created


def test_relative_path_from_environment_resolves_against_config_dir(
    write_config: WriteConfig,
) -> None:
    path = write_config(MINIMAL_GATEWAY)
    config = load_gateway_config(path, {"LOCKHUB_HUB__STATE_DIR": "elsewhere"})
    assert config.hub.state_dir == path.parent.absolute() / "elsewhere"


def test_unrelated_variables_are_ignored(write_config: WriteConfig) -> None:
    env = {
        "LOCKHUB_CONFIG": "/x.toml",  # no section separator
        "LOCKHUB_CLOUD_MQTT__URL": "nonsense",  # the cloud side's prefix: not a hub section
        "OTHER_MQTT__URL": "nonsense",
    }
    config = load_gateway_config(write_config(MINIMAL_GATEWAY), env)
    assert config.mqtt.url == "mqtt://broker"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LOCKHUB_MQTT__KEEPALIVE", "soon", "mqtt.keepalive (from LOCKHUB_MQTT__KEEPALIVE): must"),
        ("LOCKHUB_MQTT__URLL", "x", "mqtt.urll (from LOCKHUB_MQTT__URLL): unknown key"),
        ("LOCKHUB_LOCKS__ID", "x", "LOCKHUB_LOCKS__ID: names a table or list"),
        ("LOCKHUB_CLOUD__COMMAND_KEYS", "x", "LOCKHUB_CLOUD__COMMAND_KEYS: names a table or list"),
    ],
)
def test_bad_overrides_name_the_variable(
    write_config: WriteConfig, name: str, value: str, expected: str
) -> None:
    path = write_config(MINIMAL_GATEWAY)
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path, {name: value})
    assert f"{path}: {expected}" in str(caught.value)


def test_override_of_a_section_that_is_not_a_table(write_config: WriteConfig) -> None:
    path = write_config("access = 3\n" + MINIMAL_GATEWAY)
    with pytest.raises(ConfigError, match=r"access: must be a valid dictionary"):
        load_gateway_config(path, {"LOCKHUB_ACCESS__GRACE_SECONDS": "5"})


def test_secret_from_environment_is_not_echoed(write_config: WriteConfig) -> None:
    path = write_config(MINIMAL_GATEWAY)
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path, {"LOCKHUB_MQTT__PASSWORD": "hunter2"})
    assert "mqtt.username: is required" in str(caught.value)
    assert "hunter2" not in str(caught.value)
