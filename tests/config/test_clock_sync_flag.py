"""``[access] clock_sync_flag``: the file whose existence says the clock is synchronized."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.clock import SYNC_FLAG
from gateway.config import load_gateway_config
from gateway.errors import ConfigError

from .conftest import GATEWAY_EXAMPLE, MINIMAL_GATEWAY, WriteConfig


def with_flag(value: str) -> str:
    return MINIMAL_GATEWAY + f"[access]\nclock_sync_flag = {value}\n"


def test_the_default_is_systemd_timesyncd_s_flag(write_config: WriteConfig) -> None:
    config = load_gateway_config(write_config(MINIMAL_GATEWAY), {})
    assert config.access.clock_sync_flag == Path("/run/systemd/timesync/synchronized")
    assert config.access.clock_sync_flag == SYNC_FLAG  # what the clock used before the key


def test_the_example_names_the_default(write_config: WriteConfig) -> None:
    assert "\nclock_sync_flag = " in GATEWAY_EXAMPLE.read_text()
    assert load_gateway_config(GATEWAY_EXAMPLE, {}).access.clock_sync_flag == SYNC_FLAG


def test_an_absolute_path_is_taken_as_written(write_config: WriteConfig) -> None:
    path = write_config(with_flag('"/run/chrony/synced"'))
    # A system path: not resolved against the config file's directory like state_dir is.
    assert load_gateway_config(path, {}).access.clock_sync_flag == Path("/run/chrony/synced")


def test_the_environment_can_set_it(write_config: WriteConfig) -> None:
    env = {"LOCKHUB_ACCESS__CLOCK_SYNC_FLAG": "/run/ntp/synced"}
    config = load_gateway_config(write_config(MINIMAL_GATEWAY), env)
    assert config.access.clock_sync_flag == Path("/run/ntp/synced")


@pytest.mark.parametrize(
    ("value", "what"),
    [
        pytest.param('"run/flag"', "must be an absolute path", id="relative"),
        pytest.param('""', "must not be empty", id="empty"),
        pytest.param('"/run/a\\u0000b"', "must not contain a NUL character", id="nul"),
        pytest.param("5", 'must be a path in quotes, like "/run/systemd', id="not-a-string"),
    ],
)
def test_a_bad_value_names_the_file_and_the_field(
    write_config: WriteConfig, value: str, what: str
) -> None:
    path = write_config(with_flag(value))
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path, {})
    assert caught.value.source == str(path)
    assert f"{path}: access.clock_sync_flag: {what}" in str(caught.value)


def test_a_bad_value_from_the_environment_is_refused_too(write_config: WriteConfig) -> None:
    path = write_config(MINIMAL_GATEWAY)
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path, {"LOCKHUB_ACCESS__CLOCK_SYNC_FLAG": "synced"})
    where = "access.clock_sync_flag (from LOCKHUB_ACCESS__CLOCK_SYNC_FLAG)"
    assert f"{path}: {where}: must be an absolute path" in str(caught.value)
