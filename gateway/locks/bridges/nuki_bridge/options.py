"""What configures a ``nuki_bridge`` lock: its options, its API token, its bridge client."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from cloud_sync.protocol.tomlconfig import Section

from ....config import LockSection
from ....errors import ConfigError
from ...registry import DriverContext
from ..nuki_bridge_api import AuthMode
from ..nuki_bridge_client import BridgeClient

# Credential store kind (the name of a record, not a secret).
TOKEN_KIND = "nuki_bridge"  # noqa: S105
# The API documents tokens of up to 20 characters; allow some slack, refuse junk.
MAX_TOKEN_CHARS = 64


class NukiBridgeOptions(Section):
    """``options`` of a ``nuki_bridge`` lock."""

    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    port: int = Field(default=8080, ge=1, le=65535)
    nuki_id: int = Field(ge=0, le=2**32 - 1)
    # 0 Smart Lock 1.0/2.0, 3 Smart Door, 4 Smart Lock 3.0 (Pro) and later; 2 (Opener) is not
    # a lock.
    device_type: Literal[0, 3, 4] = 0
    token_file: Path | None = None
    auth: Literal["auto", "encrypted", "hashed", "plain"] = "auto"
    callback_url_base: str | None = None

    @field_validator("callback_url_base")
    @classmethod
    def _http_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "http" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("must be http://host:port of the hub's API (the bridge has no TLS)")
        return value.rstrip("/")


def read_token_file(path: Path, source: str, lock_id: str) -> str:
    """The API token in ``path``: owner-only (0600), one line; ConfigError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        what = f"cannot read {path}: {exc.strerror}"
        raise option_error(source, lock_id, "token_file", what) from None
    with os.fdopen(fd, "rb") as file:
        mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
        data = file.read(MAX_TOKEN_CHARS + 2)
    if mode & 0o077:
        what = f"{path} is readable by group or others (mode {mode:04o}); run `chmod 600 {path}`"
        raise option_error(source, lock_id, "token_file", what)
    token = data.decode("ascii", "replace").strip()
    if not token or len(token) > MAX_TOKEN_CHARS or not token.isprintable() or " " in token:
        raise option_error(source, lock_id, "token_file", f"{path} does not hold one token")
    return token


def configured_token(
    options: NukiBridgeOptions, section: LockSection, context: DriverContext
) -> str | None:
    if options.token_file is not None:
        return read_token_file(options.token_file, context.source, section.id)
    stored = context.credentials().load(section.id, TOKEN_KIND)
    token = stored.get("token") if stored else None
    return token if isinstance(token, str) else None


def bridge_client(
    options: NukiBridgeOptions, context: DriverContext, token: str | None
) -> BridgeClient:
    auth = None if options.auth == "auto" else AuthMode(options.auth)
    return BridgeClient(
        options.host, options.port, token=token, auth=auth, now=context.now, sleep=context.sleep
    )


def option_error(source: str, lock_id: str, option: str, what: str) -> ConfigError:
    return ConfigError(source, [f"{source}: locks[{lock_id}].options.{option}: {what}"])
