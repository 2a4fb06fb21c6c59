"""Structured logs: JSON for machines (systemd, pipes), console for people, secrets redacted."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal, TextIO, cast

import structlog

REDACTED = "[redacted]"
# Words that, as one part of a snake_case key, mark a value as secret. A safety net: callers
# must not log secrets in the first place.
SECRET_WORDS = frozenset(
    {"code", "codes", "token", "tokens", "secret", "secrets", "password", "passwd", "key", "keys"}
)
# systemd sets these for services; its journal wants one JSON object per line.
SYSTEMD_ENV = ("JOURNAL_STREAM", "INVOCATION_ID")

LogFormat = Literal["auto", "json", "console"]


def redact_secrets(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of every key named like a secret (``code``, ``api_token``...)."""
    for name in event_dict:
        if name != "event" and SECRET_WORDS & set(name.lower().split("_")):
            event_dict[name] = REDACTED
    return event_dict


def wants_json(fmt: LogFormat, stream: TextIO, env: Mapping[str, str]) -> bool:
    """Whether to render JSON: asked for, or ``auto`` off a terminal or under systemd."""
    if fmt != "auto":
        return fmt == "json"
    return any(name in env for name in SYSTEMD_ENV) or not stream.isatty()


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at each write: loggers cached on first use keep working
    when the process (or a test harness) replaces stderr later."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(
    level: str,
    fmt: LogFormat = "auto",
    *,
    stream: TextIO | None = None,
    env: Mapping[str, str] = os.environ,
) -> None:
    """Configure structlog process-wide: ``level`` by name, output to ``stream`` (stderr)."""
    levels = logging.getLevelNamesMapping()
    if level.upper() not in levels:
        raise ValueError(f"unknown log level {level!r}")
    # structlog only writes and flushes; the proxy is a TextIO for those.
    out = stream or cast(TextIO, _CurrentStderr())
    as_json = wants_json(fmt, out, env)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
        structlog.processors.StackInfoRenderer(),
    ]
    if as_json:
        # The console renderer prints tracebacks itself; JSON needs them as a string field.
        processors.append(structlog.processors.format_exc_info)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(levels[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        # Not cached: SIGHUP changes the level, and a cached logger would keep the old one.
        cache_logger_on_first_use=False,
    )
