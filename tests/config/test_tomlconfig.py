"""The shared pure loader: any bytes give a model or ConfigFileError; OS errors in plain words."""

from __future__ import annotations

import errno
from pathlib import Path, PurePath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud_sync.protocol.errors import ProtocolError
from cloud_sync.protocol.tomlconfig import (
    ConfigFileError,
    MqttSection,
    Problem,
    parse_config,
    read_failure,
    split_listen,
)
from gateway.config import GatewayConfig

from .conftest import MINIMAL_GATEWAY

BASE = PurePath("/etc/lockhub")


def parse(data: bytes) -> GatewayConfig:
    return parse_config(
        data, "hub.toml", GatewayConfig, env={}, env_prefix="LOCKHUB_", base_dir=BASE
    )


def test_parses_bytes_without_touching_disk() -> None:
    config = parse(MINIMAL_GATEWAY.encode())
    assert config.hub.state_dir == Path("/etc/lockhub/state")


@given(st.binary(max_size=200))
def test_any_bytes_give_a_config_or_our_error(data: bytes) -> None:
    try:
        parse(data)
    except ConfigFileError as exc:
        lines = exc.lines()
    else:
        return
    assert lines
    assert all(line.startswith("hub.toml: ") for line in lines)


@given(st.text(alphabet="[]=\"'.,{}#\n abhuidstatemqurl:/_-0123456789", max_size=120))
def test_any_toml_like_text_gives_a_config_or_our_error(text: str) -> None:
    try:
        parse((MINIMAL_GATEWAY + text).encode())
    except ProtocolError as exc:
        error: ProtocolError = exc
    else:
        return
    assert isinstance(error, ConfigFileError)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (FileNotFoundError(errno.ENOENT, "No such file"), "f.toml: no such file"),
        (PermissionError(errno.EACCES, "Permission denied"), "f.toml: permission denied"),
        (IsADirectoryError(errno.EISDIR, "Is a directory"), "f.toml: is a directory"),
        (OSError(errno.EIO, "Input/output error"), "f.toml: cannot be read: Input/output error"),
        (OSError("odd"), "f.toml: cannot be read: odd"),
    ],
)
def test_read_failures_in_plain_words(error: OSError, expected: str) -> None:
    assert str(read_failure("f.toml", error)).startswith(expected)


def test_error_lines_with_and_without_field() -> None:
    error = ConfigFileError("f.toml", [Problem("a.b", "bad"), Problem(None, "worse")])
    assert error.lines() == ["f.toml: a.b: bad", "f.toml: worse"]
    assert str(error) == "f.toml: a.b: bad\nf.toml: worse"


def test_paths_stay_as_given_without_a_base_directory() -> None:
    section = MqttSection.model_validate({"url": "mqtts://b", "ca": "ca.pem"})
    assert section.ca == Path("ca.pem")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:80", ("127.0.0.1", 80)), ("[::]:65535", ("::", 65535)), ("h:1", ("h", 1))],
)
def test_split_listen(text: str, expected: tuple[str, int]) -> None:
    assert split_listen(text) == expected


@pytest.mark.parametrize("text", ["", "h", "h:", ":1", "h:x", "h:65536", "[]:1", "h:-1"])
def test_split_listen_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        split_listen(text)
