"""The hub config: the example loads, and every error names the file, the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.config import GatewayConfig, load_gateway_config
from gateway.errors import ConfigError, GatewayError

from .conftest import COMMAND_KEY, GATEWAY_EXAMPLE, MINIMAL_GATEWAY, WriteConfig


def load_error(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(path, env or {})
    assert isinstance(caught.value, GatewayError)
    assert caught.value.source == str(path)
    return str(caught.value)


def test_example_loads_as_shipped() -> None:
    config = load_gateway_config(GATEWAY_EXAMPLE, {})
    assert config.hub.id == "hub-0001"
    assert config.hub.state_dir == Path("/var/lib/lockhub")
    assert [(lock.id, lock.driver) for lock in config.locks] == [("front-door", "sim")]
    assert isinstance(config.cloud.public_keys()["cloud-2026"], Ed25519PublicKey)
    assert (config.access.grace_seconds, config.access.untrusted_clock_policy) == (120, "deny")


def test_minimal_config_gets_defaults(write_config: WriteConfig) -> None:
    config = load_gateway_config(write_config(MINIMAL_GATEWAY), {})
    assert config.mqtt.topic_prefix == "lockhub/v1"
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("broker", 1883, False)
    assert config.mqtt.keepalive == 60
    assert (config.api.host, config.api.port) == ("127.0.0.1", 8080)
    assert config.locks == []
    assert config.cloud.command_keys == {}
    assert (config.log.level, config.log.format) == ("info", "auto")
    assert config.lock("front-door") is None


def test_relative_paths_resolve_against_the_config_directory(write_config: WriteConfig) -> None:
    text = MINIMAL_GATEWAY.replace("mqtt://broker", "mqtts://broker") + (
        'ca = "tls/ca.pem"\ncert = "/abs/hub.pem"\nkey = "tls/hub.key"\n'
        '[api]\nlisten = "[::1]:9000"\nadmin_token_file = "admin-token"\n'
    )
    path = write_config(text)
    config = load_gateway_config(path, {})
    base = path.parent.absolute()
    assert config.hub.state_dir == base / "state"
    assert config.mqtt.ca == base / "tls" / "ca.pem"
    assert config.mqtt.cert == Path("/abs/hub.pem")
    assert config.mqtt.key == base / "tls" / "hub.key"
    assert config.api.admin_token_file == base / "admin-token"
    assert (config.api.host, config.api.port) == ("::1", 9000)
    assert (config.mqtt.port, config.mqtt.tls) == (8883, True)


def test_locks_and_options(write_config: WriteConfig) -> None:
    text = MINIMAL_GATEWAY + (
        '[[locks]]\nid = "a"\ndriver = "sim"\n'
        '[[locks]]\nid = "b"\ndriver = "nuki_bridge"\n[locks.options]\nhost = "10.0.0.5"\n'
    )
    config = load_gateway_config(write_config(text), {})
    lock = config.lock("b")
    assert lock is not None
    assert lock.options == {"host": "10.0.0.5"}


BAD_CONFIGS = [
    pytest.param(
        MINIMAL_GATEWAY + "keepalive = 'soon'\n",
        "mqtt.keepalive: must be a valid integer",
        id="wrong-type",
    ),
    pytest.param(
        MINIMAL_GATEWAY.replace("state_dir", "statedir"),
        "hub.statedir: unknown key (check the spelling); allowed: id, state_dir",
        id="unknown-key",
    ),
    pytest.param(MINIMAL_GATEWAY + "[hubb]\n", "hubb: unknown key", id="unknown-section"),
    pytest.param(
        MINIMAL_GATEWAY + '[[locks]]\nid = "a"\ndriver = "sim"\ncolor = 1\n',
        "locks[0].color: unknown key (check the spelling); allowed: id, driver, options",
        id="unknown-lock-key",
    ),
    pytest.param(MINIMAL_GATEWAY.replace("hub-1", "hub/1"), "hub.id: must be 1-64", id="hub-id"),
    pytest.param(MINIMAL_GATEWAY.replace("hub-1", "h" * 65), "hub.id: must be 1-64", id="long-id"),
    pytest.param(
        MINIMAL_GATEWAY.replace('id = "hub-1"\n', ""), "hub.id: is required", id="missing"
    ),
    pytest.param(
        MINIMAL_GATEWAY.replace('"state"', '""'), "hub.state_dir: must not be empty", id="empty"
    ),
    pytest.param(
        MINIMAL_GATEWAY + '[[locks]]\nid = "a"\ndriver = "sim"\n' * 2,
        "locks[1].id: duplicate lock id (also locks[0])",
        id="duplicate-locks",
    ),
    pytest.param(
        MINIMAL_GATEWAY + '[[locks]]\nid = "a"\ndriver = "nukki"\n',
        "locks[0].driver: must be 'sim', 'nuki_ble', 'nuki_bridge', 'yale_ble', 'yale_cloud' "
        "or 'schlage' (got 'nukki')",
        id="driver",
    ),
    pytest.param(
        MINIMAL_GATEWAY + '[cloud]\ncommand_keys = { k1 = "AAAA" }\n',
        "cloud.command_keys.k1: must be base64url of a raw Ed25519 public key (Ed25519 key must",
        id="short-key",
    ),
    pytest.param(
        MINIMAL_GATEWAY + '[cloud]\ncommand_keys = { k1 = "not base64!" }\n',
        "cloud.command_keys.k1: must be base64url of a raw Ed25519 public key (not unpadded",
        id="not-base64",
    ),
    pytest.param(
        MINIMAL_GATEWAY + "[cloud]\ncommand_keys = { k1 = 7 }\n",
        "cloud.command_keys.k1: must be a valid string",
        id="key-not-string",
    ),
    pytest.param(
        MINIMAL_GATEWAY + f'[cloud]\ncommand_keys = {{ "a kid" = "{COMMAND_KEY}" }}\n',
        'cloud.command_keys."a kid": key name must be 1-64',
        id="bad-kid",
    ),
    pytest.param(
        MINIMAL_GATEWAY + "[cloud]\ncommand_keys = 3\n",
        "cloud.command_keys: must be a valid dictionary",
        id="keys-not-table",
    ),
    pytest.param(
        MINIMAL_GATEWAY.replace("mqtt://broker", "http://broker"),
        "mqtt.url: must be mqtt://host[:port] or mqtts://host[:port]",
        id="url-scheme",
    ),
    pytest.param(
        MINIMAL_GATEWAY.replace("mqtt://broker", "mqtt://broker/x?y"),
        "mqtt.url: must not have a path",
        id="url-path",
    ),
    pytest.param(
        MINIMAL_GATEWAY.replace("mqtt://broker", "mqtt://broker:99999"),
        "mqtt.url: port must be a number from 1 to 65535",
        id="url-port",
    ),
    pytest.param(
        MINIMAL_GATEWAY + "topic_prefix = 'lockhub/#'\n",
        "mqtt.topic_prefix: must be topic levels",
        id="prefix-wildcard",
    ),
    pytest.param(
        MINIMAL_GATEWAY + "topic_prefix = '$SYS/x'\n", "mqtt.topic_prefix:", id="prefix-dollar"
    ),
    pytest.param(
        MINIMAL_GATEWAY + "topic_prefix = 'a//b'\n", "mqtt.topic_prefix:", id="prefix-empty-level"
    ),
    pytest.param(
        MINIMAL_GATEWAY.replace("mqtt://", "mqtts://") + "cert = 'c.pem'\n",
        "mqtt.key: cert and key go together",
        id="cert-without-key",
    ),
    pytest.param(
        MINIMAL_GATEWAY.replace("mqtt://", "mqtts://") + "key = 'k.pem'\n",
        "mqtt.cert: cert and key go together",
        id="key-without-cert",
    ),
    pytest.param(
        MINIMAL_GATEWAY + "ca = 'ca.pem'\n",
        "mqtt.url: ca/cert/key are set, so the url must be mqtts://",
        id="tls-files-without-tls",
    ),
    pytest.param(
        MINIMAL_GATEWAY + "keepalive = 1\n",
        "mqtt.keepalive: must be greater than or equal to 5",
        id="keepalive",
    ),
    pytest.param(
        MINIMAL_GATEWAY + "[api]\nlisten = '8080'\n", "api.listen: must be host:port", id="listen"
    ),
    pytest.param(MINIMAL_GATEWAY + "[api]\nlisten = ':8080'\n", "api.listen:", id="listen-no-host"),
    pytest.param(MINIMAL_GATEWAY + "[api]\nlisten = 'h:0'\n", "api.listen:", id="listen-port-zero"),
    pytest.param(
        MINIMAL_GATEWAY + "[access]\ngrace_seconds = -1\n",
        "access.grace_seconds: must be greater than or equal to 0",
        id="grace",
    ),
    pytest.param(
        MINIMAL_GATEWAY + "[access]\nuntrusted_clock_policy = 'maybe'\n",
        "access.untrusted_clock_policy: must be 'deny' or 'allow' (got 'maybe')",
        id="policy",
    ),
    pytest.param(
        MINIMAL_GATEWAY + "[log]\nlevel = 3\n",
        "log.level: must be 'debug', 'info', 'warning' or 'error'",
        id="log-level",
    ),
    pytest.param(
        MINIMAL_GATEWAY + "[log]\nformat = 'xml'\n", "log.format: must be 'auto'", id="log-format"
    ),
    pytest.param(
        "[hub]\nid = 'x'\nstate_dir = \n",
        "line 3, column 13: invalid TOML: Invalid value",
        id="toml",
    ),
    pytest.param("[hub\n", "line 1, column 5: invalid TOML: Expected ']'", id="toml-header"),
    pytest.param('[hub]\nid = "x', "end of file: invalid TOML: Unterminated string", id="toml-eof"),
    pytest.param(b"[hub]\nid = '\xff'\n", "is not UTF-8 text (bad byte at offset 12)", id="utf8"),
]


@pytest.mark.parametrize(("content", "expected"), BAD_CONFIGS)
def test_errors_name_file_and_field(
    write_config: WriteConfig, content: str | bytes, expected: str
) -> None:
    path = write_config(content)
    assert f"{path}: {expected}" in load_error(path)


def test_all_problems_are_reported_at_once(write_config: WriteConfig) -> None:
    path = write_config(
        MINIMAL_GATEWAY.replace("hub-1", "a b") + "keepalive = 'x'\n[log]\nlevel = 'x'"
    )
    lines = load_error(path).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["hub.id", "mqtt.keepalive", "log.level"]


@pytest.mark.parametrize(
    "url",
    [
        "mqtt://user:hunter2@broker",
        "mqtt://:hunter2@broker",
    ],
)
def test_credentials_in_url_are_refused_without_echo(write_config: WriteConfig, url: str) -> None:
    message = load_error(write_config(MINIMAL_GATEWAY.replace("mqtt://broker", url)))
    assert "mqtt.url: must not carry credentials" in message
    assert "hunter2" not in message


def test_password_without_username_is_refused_without_echo(write_config: WriteConfig) -> None:
    message = load_error(write_config(MINIMAL_GATEWAY + "password = 'hunter2'\n"))
    assert "mqtt.username: is required when a password is set" in message
    assert "hunter2" not in message


def test_password_is_kept_secret(write_config: WriteConfig) -> None:
    config = load_gateway_config(
        write_config(MINIMAL_GATEWAY + "username = 'u'\npassword = 'hunter2'\n"), {}
    )
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(config)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert load_error(path) == f"{path}: no such file"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    assert load_error(tmp_path) == f"{tmp_path}: is a directory, not a config file"


def test_config_is_frozen(write_config: WriteConfig) -> None:
    config = load_gateway_config(write_config(MINIMAL_GATEWAY), {})
    with pytest.raises(ValueError, match="frozen"):
        config.hub.id = "other"  # type: ignore[misc]
    assert isinstance(config, GatewayConfig)


def test_lockout_policy_is_configurable_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    base = (Path(__file__).parents[2] / "config" / "gateway.example.toml").read_text()
    path.write_text(base.replace("lockout_base_seconds = 30", "lockout_base_seconds = 7200"))
    with pytest.raises(ConfigError, match="lockout_base_seconds must not exceed"):
        load_gateway_config(path, env={})
    path.write_text(base.replace("lockout_threshold = 5", "lockout_threshold = 3"))
    assert load_gateway_config(path, env={}).access.lockout_threshold == 3
