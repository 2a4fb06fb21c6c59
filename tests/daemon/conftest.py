"""Hub configs for daemon tests: a sim lock, a free loopback port, keys made by the real CLI."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud_sync import protocol as p

ADMIN_TOKEN = "daemon-admin-token-0123456789abcdef"  # noqa: S105 - a test value
CONFIG = """
[hub]
id = "hub-daemon"
state_dir = "{state}"

[mqtt]
url = "mqtt://127.0.0.1:1"

[cloud]
command_keys = {{ "cloud-1" = "{key}" }}

[api]
listen = "127.0.0.1:{port}"
admin_token_file = "{token_file}"

[access]
clock_sync_flag = "{sync_flag}"

[log]
level = "info"

[[locks]]
id = "front-door"
driver = "{driver}"
"""


def write_config(tmp_path: Path, *, port: int, driver: str = "sim") -> Path:
    """A hub config in ``tmp_path`` with its admin token file (0600); returns the config path."""
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN + "\n")
    token_file.chmod(0o600)
    key = p.public_key_b64(Ed25519PrivateKey.generate().public_key())
    # The hub's clock is trusted: a synchronised flag, as systemd-timesyncd leaves it.
    sync_flag = tmp_path / "synchronized"
    sync_flag.touch()
    path = tmp_path / "gateway.toml"
    path.write_text(
        CONFIG.format(
            state=tmp_path / "state", key=key, port=port, token_file=token_file, driver=driver,
            sync_flag=sync_flag,
        )
    )  # fmt: skip
    return path
