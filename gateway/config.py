"""The hub's TOML config (DESIGN.md section 6) as validated, frozen pydantic models.

Environment overrides follow ``LOCKHUB_<SECTION>__<FIELD>`` (``LOCKHUB_HUB__STATE_DIR``,
``LOCKHUB_MQTT__URL``); see ``cloud_sync.protocol.tomlconfig`` for the exact rules.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from cloud_sync.protocol.envelope import MAX_BATCH_ENVELOPES
from cloud_sync.protocol.errors import MalformedError
from cloud_sync.protocol.keys import load_command_keys, load_ed25519_public
from cloud_sync.protocol.tomlconfig import (
    ConfigFileError,
    ConfigPath,
    FieldError,
    Identifier,
    ListenAddress,
    ListenSection,
    LogSection,
    MqttSection,
    Section,
    parse_config,
    read_failure,
)

from .clock import SYNC_FLAG
from .errors import ConfigError
from .sync.settings import (
    DEFAULT_ALERT_FRACTION,
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_OUTBOX,
    DEFAULT_RETENTION,
    SyncSettings,
)

ENV_PREFIX = "LOCKHUB_"
DEFAULT_CONFIG_PATH = Path("/etc/lockhub/gateway.toml")
# Two minutes absorbs a courier arriving early and the drift of a clock that lost sync,
# without opening a door long outside the booked window.
DEFAULT_GRACE_SECONDS = 120
# A grace beyond a day would make windows meaningless.
MAX_GRACE_SECONDS = 86_400

# Below this a busy day offline would already hit the outbox bound.
MIN_OUTBOX_BOUND = 1000
# A hundred million records is ~100 GiB: more than any hub's SD card or SSD holds.
MAX_OUTBOX_BOUND = 100_000_000
# Ten years: acked records are kept for local audit, not as an archive.
MAX_RETENTION_DAYS = 3650

Driver = Literal["sim", "nuki_ble", "nuki_bridge", "yale_ble", "yale_cloud", "schlage"]


def _check_command_key(value: str) -> str:
    try:
        load_ed25519_public(value)
    except MalformedError as exc:
        raise ValueError(f"must be base64url of a raw Ed25519 public key ({exc})") from None
    return value


CommandKey = Annotated[str, AfterValidator(_check_command_key)]


class HubSection(Section):
    """``[hub]``: who this hub is and where its state lives."""

    id: Identifier
    state_dir: ConfigPath


class CloudSection(Section):
    """``[cloud]``: the cloud keys whose signed commands this hub accepts, by kid."""

    command_keys: dict[Identifier, CommandKey] = Field(default_factory=dict)

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        """The trusted command keys, ready for ``envelope.verify``."""
        return load_command_keys(self.command_keys)


class ApiSection(ListenSection):
    """``[api]``: the local HTTP API."""

    listen: ListenAddress = "127.0.0.1:8080"
    admin_token_file: ConfigPath | None = None


class HubMqttSection(MqttSection):
    """``[mqtt]`` on a hub: the shared keys plus the MQTT version to speak."""

    # auto: MQTT 5 (session expiry), falling back to 3.1.1 when the broker refuses it.
    protocol: Literal["auto", "5", "3.1.1"] = "auto"


class SyncSection(Section):
    """``[sync]``: batching and the outbox bound of the MQTT link."""

    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1, le=MAX_BATCH_ENVELOPES)
    max_outbox_records: int = Field(
        default=DEFAULT_MAX_OUTBOX, ge=MIN_OUTBOX_BOUND, le=MAX_OUTBOX_BOUND
    )
    outbox_alert_fraction: float = Field(default=DEFAULT_ALERT_FRACTION, gt=0, le=1)
    acked_retention_days: float = Field(default=DEFAULT_RETENTION.days, ge=0, le=MAX_RETENTION_DAYS)

    def settings(self) -> SyncSettings:
        """The link's settings from this section (timings keep their defaults)."""
        return SyncSettings(
            batch_size=self.batch_size,
            max_outbox=self.max_outbox_records,
            alert_fraction=self.outbox_alert_fraction,
            retention=timedelta(days=self.acked_retention_days),
        )


class LockSection(Section):
    """``[[locks]]``: one lock and the driver that talks to it."""

    id: Identifier
    driver: Driver
    options: dict[str, Any] = Field(default_factory=dict)


def _sync_flag_text(value: object) -> object:
    if not isinstance(value, str | Path):
        # pydantic reports a ValueError as a field error; a TypeError would escape it.
        raise ValueError(f'must be a path in quotes, like "{SYNC_FLAG}"')  # noqa: TRY004
    if value == "":
        raise ValueError("must not be empty")
    if isinstance(value, str) and "\x00" in value:
        # os.stat() raises ValueError, not OSError, for it: the sync check would fail.
        raise ValueError("must not contain a NUL character")
    return value


def _absolute_sync_flag(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError(
            "must be an absolute path: the file that exists while the clock is synchronized, "
            f"like {SYNC_FLAG}"
        )
    return value


SyncFlagPath = Annotated[
    Path, BeforeValidator(_sync_flag_text), AfterValidator(_absolute_sync_flag)
]


class AccessSection(Section):
    """``[access]``: window policy."""

    grace_seconds: int = Field(default=DEFAULT_GRACE_SECONDS, ge=0, le=MAX_GRACE_SECONDS)
    untrusted_clock_policy: Literal["deny", "allow"] = "deny"
    # The clock counts as NTP-synchronized while this file exists (DESIGN.md 4.3); the default
    # is systemd-timesyncd's. Not resolved against the config's directory: it is a system path.
    clock_sync_flag: SyncFlagPath = SYNC_FLAG
    # Brute-force lockouts (docs/access.md): wrong answers before a lockout, per source and
    # per lock, and how long lockouts last (doubling per level up to the cap).
    lockout_threshold: int = Field(default=5, ge=1, le=100)
    lockout_lock_threshold: int = Field(default=20, ge=1, le=10_000)
    lockout_base_seconds: float = Field(default=30.0, gt=0, le=86_400)
    lockout_cap_seconds: float = Field(default=3600.0, gt=0, le=7 * 86_400)

    @model_validator(mode="after")
    def _check_lockout(self) -> AccessSection:
        if self.lockout_base_seconds > self.lockout_cap_seconds:
            raise ValueError("lockout_base_seconds must not exceed lockout_cap_seconds")
        return self


class BleSection(Section):
    """``[ble]``: the Bluetooth adapter the hub owns for its BLE locks."""

    # Links held open at once; a Pi's controller holds a few, a USB dongle more.
    connection_slots: int = Field(default=2, ge=1, le=10)
    # Seconds a link stays open after its last use (each connected second costs lock battery).
    idle_disconnect_seconds: float = Field(default=10.0, gt=0, le=300)


class GatewayConfig(Section):
    """The whole hub config."""

    hub: HubSection
    mqtt: HubMqttSection
    cloud: CloudSection = Field(default_factory=CloudSection)
    api: ApiSection = Field(default_factory=ApiSection)
    locks: list[LockSection] = Field(default_factory=list)
    access: AccessSection = Field(default_factory=AccessSection)
    log: LogSection = Field(default_factory=LogSection)
    sync: SyncSection = Field(default_factory=SyncSection)
    ble: BleSection = Field(default_factory=BleSection)

    @model_validator(mode="after")
    def _unique_lock_ids(self) -> Self:
        first: dict[str, int] = {}
        for index, lock in enumerate(self.locks):
            if lock.id in first:
                where = f"locks[{first[lock.id]}]"
                raise FieldError(("locks", index, "id"), f"duplicate lock id (also {where})")
            first[lock.id] = index
        return self

    def lock(self, lock_id: str) -> LockSection | None:
        """The lock with ``lock_id``, if configured."""
        return next((lock for lock in self.locks if lock.id == lock_id), None)


def load_gateway_config(path: Path, env: Mapping[str, str] = os.environ) -> GatewayConfig:
    """Read and validate the hub config at ``path``; raise ConfigError naming file and field."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _translate(read_failure(source, exc)) from exc
    try:
        return parse_config(
            data,
            source,
            GatewayConfig,
            env=env,
            env_prefix=ENV_PREFIX,
            base_dir=path.absolute().parent,
        )
    except ConfigFileError as exc:
        raise _translate(exc) from None


def _translate(exc: ConfigFileError) -> ConfigError:
    return ConfigError(exc.source, exc.lines())
