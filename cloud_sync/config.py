"""The cloud's TOML config (DESIGN.md section 7) as validated, frozen pydantic models.

Environment overrides follow ``LOCKHUB_CLOUD_<SECTION>__<FIELD>``
(``LOCKHUB_CLOUD_CLOUD__STATE_DIR``, ``LOCKHUB_CLOUD_MQTT__URL``): a prefix of its own, so
a machine running a hub and the cloud side never applies one's overrides to the other.
Rules: ``cloud_sync.protocol.tomlconfig``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from cloud_sync.carriers.settings import CarriersSection
from cloud_sync.protocol.tomlconfig import (
    ConfigFileError,
    ConfigPath,
    Identifier,
    ListenAddress,
    ListenSection,
    LogSection,
    MqttSection,
    OptionalIdentifier,
    Section,
    parse_config,
    read_failure,
)

ENV_PREFIX = "LOCKHUB_CLOUD_"
DEFAULT_CONFIG_PATH = Path("/etc/lockhub/cloud.toml")
DATABASE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")
# MQTT 5: the broker keeps a disconnected worker's session, and so its share of the records,
# this long. Five minutes covers a restart or an upgrade (the worker gets its queue back);
# a worker gone for good stops receiving its share after it (docs/operations.md).
DEFAULT_WORKER_SESSION_EXPIRY_S = 300
# A week: a worker away longer than a hub may be offline is not coming back.
MAX_WORKER_SESSION_EXPIRY_S = 7 * 24 * 3600


class ConfigError(Exception):
    """The cloud config file is missing, unreadable or invalid: fix it, then start again."""

    def __init__(self, source: str, lines: Sequence[str]) -> None:
        self.source = source
        self.lines = tuple(lines)
        super().__init__("\n".join(self.lines))


class CloudSection(Section):
    """``[cloud]``: where the signing key and the database live, and the key's id."""

    state_dir: ConfigPath
    database_url: str
    signing_kid: Identifier

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        # Never echo the URL: it may carry a database password.
        if not value.startswith(DATABASE_SCHEMES):
            raise ValueError(f"must start with {' or '.join(DATABASE_SCHEMES)}")
        return value


class CloudMqttSection(MqttSection):
    """``[mqtt]``: the broker link, plus the shared-subscription group of the workers."""

    # Workers share $share/<group>/... subscriptions; "" subscribes plainly (one worker on a
    # broker without shared subscriptions, such as the demo's embedded amqtt).
    shared_group: OptionalIdentifier = "lockhub-cloud"
    # This worker's MQTT client id; with per-worker TLS certificates it is the certificate's
    # CN (config/mosquitto: use_username_as_clientid). Two workers need two ids.
    client_id: Identifier = "lockhub-cloud"
    # auto: MQTT 5 (session expiry), falling back to 3.1.1 when the broker refuses it.
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    # Seconds the broker keeps this worker's session after it disconnects (MQTT 5 only;
    # 0 ends it with the connection). MQTT 3.1.1 has no expiry: see docs/operations.md.
    worker_session_expiry: int = Field(
        default=DEFAULT_WORKER_SESSION_EXPIRY_S, ge=0, le=MAX_WORKER_SESSION_EXPIRY_S
    )


class ApiSection(ListenSection):
    """``[api]``: the REST API."""

    listen: ListenAddress = "127.0.0.1:8081"
    # Requests per second per API key, and the burst a key may spend at once: a dispatcher
    # creating a day's windows in a loop stays well under; a runaway script gets 429s.
    rate_limit_per_second: float = Field(default=20.0, gt=0, le=10_000)
    rate_limit_burst: int = Field(default=100, ge=1, le=100_000)


class CloudConfig(Section):
    """The whole cloud config."""

    cloud: CloudSection
    mqtt: CloudMqttSection
    api: ApiSection = Field(default_factory=ApiSection)
    carriers: CarriersSection = Field(default_factory=CarriersSection)
    log: LogSection = Field(default_factory=LogSection)


def load_cloud_config(path: Path, env: Mapping[str, str] = os.environ) -> CloudConfig:
    """Read and validate the cloud config at ``path``; raise ConfigError naming file and field."""
    try:
        data = path.read_bytes()
        return parse_config(
            data,
            str(path),
            CloudConfig,
            env=env,
            env_prefix=ENV_PREFIX,
            base_dir=path.absolute().parent,
        )
    except OSError as exc:
        problem = read_failure(str(path), exc)
        raise ConfigError(problem.source, problem.lines()) from exc
    except ConfigFileError as exc:
        raise ConfigError(exc.source, exc.lines()) from None
