"""What configures a ``schlage`` lock (options, password file, stored account) and its ``build``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pydantic import Field, model_validator

from cloud_sync.protocol.tomlconfig import Section

from ....config import LockSection
from ....errors import ConfigError
from ...registry import DriverContext, parse_options
from .account import DEFAULT_API_BASE, MAX_READ_TIMEOUT, READ_TIMEOUT, Endpoints, account
from .driver import SchlageLock
from .errors import REPAIR

CREDENTIAL_KIND = "schlage"  # {"username", "password", "device_id"} saved by pair()
_EXPOSING_BITS = stat.S_IRWXG | stat.S_IRWXO


class SchlageOptions(Section):
    """``options`` of a ``schlage`` lock."""

    device_id: str | None = Field(default=None, min_length=1)
    name: str | None = Field(default=None, min_length=1)
    username: str | None = Field(default=None, min_length=3)
    password_file: Path | None = None
    # Self-hosting and tests: where the Schlage API and the Cognito pool answer.
    api_base: str = Field(default=DEFAULT_API_BASE, pattern=r"^https?://")
    cognito_endpoint: str | None = Field(default=None, pattern=r"^https?://")
    # Seconds to wait for one answer; the default suits the coordinator's timeouts (see account.py).
    read_timeout: float = Field(default=READ_TIMEOUT, gt=0, le=MAX_READ_TIMEOUT)

    @model_validator(mode="after")
    def _consistent(self) -> SchlageOptions:
        if self.device_id is not None and self.name is not None:
            raise ValueError("give device_id or name, not both")
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs username")
        return self


def read_password_file(path: Path, source: str, lock_id: str) -> str:
    """The password in ``path`` (one line); ConfigError if missing or readable by others."""
    where = f"{source}: locks[{lock_id}].options.password_file"
    try:
        with path.open("rb") as file:
            mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
            text = file.read().decode().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [f"{where}: cannot read {path}: {exc}"]) from None
    if mode & _EXPOSING_BITS:
        raise ConfigError(source, [f"{where}: {path} has mode {mode:04o}; chmod 600 it"])
    if not text:
        raise ConfigError(source, [f"{where}: {path} is empty"])
    return text


def build(section: LockSection, context: DriverContext) -> SchlageLock:
    """The driver for a ``schlage`` lock section."""
    options = parse_options(SchlageOptions, section, context.source)
    store = context.credentials()
    saved = store.load(section.id, CREDENTIAL_KIND) or {}
    if options.password_file is not None and options.username is not None:
        username = options.username
        password = read_password_file(options.password_file, context.source, section.id)
    elif saved.get("username") and saved.get("password"):
        username, password = str(saved["username"]), str(saved["password"])
    else:
        what = f"no credentials: set username and password_file, or {REPAIR}"
        raise ConfigError(
            context.source,
            [f"{context.source}: locks[{section.id}]: {what.format(lock_id=section.id)}"],
        )
    device_id = options.device_id or (None if options.name else saved.get("device_id"))
    if device_id is None and options.name is None:
        what = "set device_id or name (or pair the lock, which records the device)"
        raise ConfigError(
            context.source, [f"{context.source}: locks[{section.id}].options: {what}"]
        )
    endpoints = Endpoints(options.api_base, options.cognito_endpoint, options.read_timeout)
    return SchlageLock(
        section.id,
        account=account(username, password, endpoints),
        device_id=device_id,
        device_name=options.name,
        store=store,
        now=context.now,
        sleep=context.sleep,
    )
