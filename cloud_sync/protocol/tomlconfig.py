"""TOML config files as pydantic models, shared by hub and cloud: pure, the caller reads the file.

Environment overrides: ``<PREFIX><SECTION>__<FIELD>`` sets one single-valued key of one
``[section]`` table (``LOCKHUB_MQTT__URL``). Names are case-insensitive; a variable whose section
is not a table of the model is ignored (so one prefix can be a prefix of another); arrays of
tables (``[[locks]]``) and table-valued keys (``command_keys``, ``options``) cannot be set from
the environment and naming one is an error. Values arrive as strings and are validated like
the file's. Relative paths, from the file or the environment, are resolved against ``base_dir``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, Self, TypeVar, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import ProtocolError

ModelT = TypeVar("ModelT", bound=BaseModel)

# Identifiers become MQTT topic levels and JWS kids: no separators, wildcards or spaces, and
# short enough to keep topics and headers small.
IDENTIFIER = re.compile(r"[A-Za-z0-9._-]{1,64}")
MQTT_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
# 60 s: the broker publishes a dead peer's Last Will within 1.5 keepalives, and a ping a minute
# costs nothing on metered site links. MQTT encodes keepalive in 16 bits.
DEFAULT_KEEPALIVE_SECONDS = 60
MIN_KEEPALIVE_SECONDS = 5
MAX_KEEPALIVE_SECONDS = 65535
MAX_PORT = 65535
_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config: where (dotted field path or file position) and what."""

    field: str | None
    what: str


class ConfigFileError(ProtocolError):
    """A config file that does not parse or validate; ``str()`` gives one line per problem."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        """Each problem as ``<file>: <field>: <what>``."""
        return [
            f"{self.source}: {p.field}: {p.what}" if p.field else f"{self.source}: {p.what}"
            for p in self.problems
        ]


class FieldError(ValueError):
    """Raised by a validator to blame a field below the one being validated."""

    def __init__(self, loc: tuple[str | int, ...], what: str) -> None:
        super().__init__(what)
        self.loc = loc


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    return Path(base, value) if isinstance(base, PurePath) else value


def _non_empty(value: object) -> object:
    if value == "":
        raise ValueError("must not be empty")
    return value


def _check_identifier(value: str) -> str:
    if not IDENTIFIER.fullmatch(value):
        raise ValueError("must be 1-64 characters of A-Z a-z 0-9 . _ - (no spaces or slashes)")
    return value


def split_listen(value: str) -> tuple[str, int]:
    """Split ``host:port`` or ``[v6]:port`` into host and port; raise ValueError if malformed."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= MAX_PORT:
        raise ValueError("must be host:port with a port from 1 to 65535, like 127.0.0.1:8080")
    return host, int(port)


def _check_listen(value: str) -> str:
    split_listen(value)
    return value


ConfigPath = Annotated[Path, BeforeValidator(_non_empty), AfterValidator(_resolve_path)]
Identifier = Annotated[str, AfterValidator(_check_identifier)]


def _check_optional_identifier(value: str) -> str:
    if value and not IDENTIFIER.fullmatch(value):
        raise ValueError(
            'must be "" or 1-64 characters of A-Z a-z 0-9 . _ - (no spaces or slashes)'
        )
    return value


# An identifier, or "" for "none" (TOML has no null).
OptionalIdentifier = Annotated[str, AfterValidator(_check_optional_identifier)]
ListenAddress = Annotated[str, AfterValidator(_check_listen)]


class Section(BaseModel):
    """A config table: unknown keys are errors, so a typo never silently falls back."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenSection(Section):
    """A table with a ``listen = "host:port"`` address for a server to bind."""

    listen: ListenAddress

    @property
    def host(self) -> str:
        """The address to bind."""
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        """The port to bind."""
        return split_listen(self.listen)[1]


class MqttSection(Section):
    """``[mqtt]``: the broker link shared by hubs and the cloud."""

    url: str
    topic_prefix: str = "lockhub/v1"
    ca: ConfigPath | None = None
    cert: ConfigPath | None = None
    key: ConfigPath | None = None
    username: str | None = None
    password: SecretStr | None = None
    keepalive: int = Field(
        default=DEFAULT_KEEPALIVE_SECONDS, ge=MIN_KEEPALIVE_SECONDS, le=MAX_KEEPALIVE_SECONDS
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in MQTT_DEFAULT_PORTS or not parts.hostname:
            raise ValueError("must be mqtt://host[:port] or mqtts://host[:port]")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials; set [mqtt] username and password")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("must not have a path, query or fragment")
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError:
            raise ValueError("port must be a number from 1 to 65535") from None
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        levels = value.split("/")
        if any(not level or set(level) & set("+#\0") for level in levels) or value[0] == "$":
            raise ValueError("must be topic levels joined by '/', without + # $ or empty levels")
        return value

    @model_validator(mode="after")
    def _check_tls(self) -> Self:
        if (self.cert is None) != (self.key is None):
            missing = "key" if self.key is None else "cert"
            raise FieldError((missing,), "cert and key go together; set both or neither")
        if not self.tls and (self.ca or self.cert):
            raise FieldError(("url",), "ca/cert/key are set, so the url must be mqtts://")
        if self.password is not None and self.username is None:
            raise FieldError(("username",), "is required when a password is set")
        return self

    @property
    def tls(self) -> bool:
        """Whether the link uses TLS (``mqtts://``)."""
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        """The broker's host name or address."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The broker's port, defaulting by scheme."""
        parts = urlsplit(self.url)
        return parts.port or MQTT_DEFAULT_PORTS[parts.scheme]


def parse_config(
    data: bytes,
    source: str,
    model: type[ModelT],
    *,
    env: Mapping[str, str],
    env_prefix: str,
    base_dir: PurePath,
) -> ModelT:
    """Parse TOML ``data`` named ``source`` into ``model``, or raise ConfigFileError."""
    table = _parse_toml(data, source)
    origins = _apply_env(table, model, env, env_prefix, source)
    try:
        return model.model_validate(table, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = [_problem(model, error, origins) for error in exc.errors()]
        raise ConfigFileError(source, problems) from None


def read_failure(source: str, exc: OSError) -> ConfigFileError:
    """Describe why a config file could not be read, in plain words."""
    if isinstance(exc, FileNotFoundError):
        what = "no such file"
    elif isinstance(exc, PermissionError):
        what = "permission denied (the user running lockhub must be able to read it)"
    elif isinstance(exc, IsADirectoryError):
        what = "is a directory, not a config file"
    else:
        what = f"cannot be read: {exc.strerror or exc}"
    return ConfigFileError(source, [Problem(None, what)])


def _parse_toml(data: bytes, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        problem = Problem(None, f"is not UTF-8 text (bad byte at offset {exc.start})")
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        # tomllib names the position only inside its message, as "(at line L, column C)".
        found = _TOML_POSITION.search(message)
        at_line = f"line {found[1]}, column {found[2]}" if found and found[1] else "end of file"
        where = at_line if found else None
        problem = Problem(where, f"invalid TOML: {message[: found.start()] if found else message}")
    raise ConfigFileError(source, [problem])


def _apply_env(
    table: dict[str, Any],
    model: type[BaseModel],
    env: Mapping[str, str],
    prefix: str,
    source: str,
) -> dict[tuple[str, str], str]:
    origins: dict[tuple[str, str], str] = {}
    problems: list[Problem] = []
    for name, value in sorted(env.items()):
        section, sep, key = name[len(prefix) :].lower().partition("__")
        if (
            not name.upper().startswith(prefix.upper())
            or not sep
            or section not in model.model_fields
        ):
            continue
        section_model = _table_model(model.model_fields[section].annotation)
        inner = section_model.model_fields.get(key) if section_model else None
        if section_model is None or (inner is not None and not _is_single(inner.annotation)):
            problems.append(Problem(name, "names a table or list; set it in the file instead"))
            continue
        target = table.setdefault(section, {})
        if isinstance(target, dict):
            target[key] = value
            origins[(section, key)] = name
    if problems:
        raise ConfigFileError(source, problems)
    return origins


def _table_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_single(annotation: Any) -> bool:
    return get_origin(annotation) not in (dict, list) and _table_model(annotation) is None


def _problem(model: type[BaseModel], error: Any, origins: Mapping[tuple[str, str], str]) -> Problem:
    loc = tuple(error["loc"])
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, FieldError):
        loc += cause.loc
    what = _plain_words(model, loc, error, cause)
    if loc and loc[-1] == "[key]":
        loc, what = loc[:-1], f"key name {what}"
    path = _dotted(loc) or None
    origin = origins.get((str(loc[0]), str(loc[1]))) if len(loc) >= 2 else None
    return Problem(f"{path} (from {origin})" if origin else path, what)


def _plain_words(model: type[BaseModel], loc: tuple[Any, ...], error: Any, cause: object) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        return f"unknown key (check the spelling); allowed: {allowed}"
    if isinstance(cause, ValueError):
        return str(cause)
    what = str(error["msg"]).replace("Input should be", "must be")
    if kind == "literal_error" and isinstance(error["input"], str):
        what += f" (got {error['input']!r})"
    return what


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    current: Any = model
    for part in loc:
        # A list index steps into the list's item model, a name into that field's model.
        current = (
            get_args(current)[0] if isinstance(part, int) else current.model_fields[part].annotation
        )
    return ", ".join(current.model_fields)


def _dotted(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            name = part if _BARE_KEY.fullmatch(part) else f'"{part}"'
            path += f".{name}" if path else name
    return path


class LogSection(Section):
    """``[log]``: level and output format (auto: JSON unless on a terminal)."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
