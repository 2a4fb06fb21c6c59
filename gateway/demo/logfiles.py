"""The parts' logs during the demo: JSON lines in one file per part, never on the terminal.

The terminal shows the demo's progress only. structlog loggers are routed by module name
(``gateway.*`` to hub.log, ``cloud_sync.*`` to cloud.log); amqtt's stdlib logs go to
broker.log and any other stdlib logging to other.log. Loggers write through sinks that
outlive the files, so a logger created during the demo never writes into a closed file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

import structlog

from ..logs import configure_logging

PARTS = ("hub", "cloud", "broker", "cli", "other")
# The parts' info events (connections, windows applied, records acked) are what a reader of
# the log files wants to see; debug would triple the files.
LOG_LEVEL = "info"


class _Sink:
    """A text stream writing to the file open for one part now, or nowhere."""

    def __init__(self) -> None:
        self.file: TextIO | None = None

    def write(self, text: str) -> int:
        if self.file is not None and not self.file.closed:
            self.file.write(text)
        return len(text)

    def flush(self) -> None:
        if self.file is not None and not self.file.closed:
            self.file.flush()

    def isatty(self) -> bool:
        return False


_SINKS = {part: _Sink() for part in PARTS}


def part_of(name: str) -> str:
    """The part whose log file takes a logger named ``name``."""
    if name == "gateway" or name.startswith("gateway."):
        return "hub"
    if name == "cloud_sync" or name.startswith("cloud_sync."):
        return "cloud"
    return "other"


def _logger_for(*args: Any) -> structlog.PrintLogger:
    name = args[0] if args and isinstance(args[0], str) else ""
    return structlog.PrintLogger(cast(TextIO, _SINKS[part_of(name)]))


@dataclass
class LogFiles:
    """Opens the log files, routes every log to them, and puts things back on ``close``."""

    directory: Path
    _saved: dict[str, Any] = field(default_factory=dict)
    _handlers: list[tuple[logging.Logger, logging.Handler, bool, int]] = field(default_factory=list)

    def path(self, part: str) -> Path:
        """The log file of ``part``."""
        return self.directory / f"{part}.log"

    def open(self) -> None:
        """Start routing: structlog by module, amqtt and other stdlib loggers by handler."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for part, sink in _SINKS.items():
            sink.file = self.path(part).open("a", encoding="utf-8")
        self._saved = structlog.get_config()
        configure_logging(LOG_LEVEL, "json", stream=cast(TextIO, _SINKS["other"]))
        # Uncached: a logger first used here must not keep this routing after the demo.
        structlog.configure(logger_factory=_logger_for, cache_logger_on_first_use=False)
        self._route(logging.getLogger("amqtt"), "broker", propagate=False, level=logging.INFO)
        # Other libraries keep their level: only their warnings and errors are of interest.
        root = logging.getLogger()
        self._route(root, "other", propagate=root.propagate, level=root.level)

    def _route(self, logger: logging.Logger, part: str, *, propagate: bool, level: int) -> None:
        handler = logging.StreamHandler(cast(TextIO, _SINKS[part]))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
        self._handlers.append((logger, handler, logger.propagate, logger.level))
        logger.propagate = propagate
        logger.setLevel(level)

    def stream(self, part: str) -> TextIO:
        """The open log file of ``part`` (the CLI subprocesses' stderr goes to ``cli``)."""
        file = _SINKS[part].file
        if file is None:
            raise RuntimeError("the log files are not open")
        return file

    def close(self) -> None:
        """Stop routing and close the files (the sinks then drop what they are given)."""
        for logger, handler, propagate, level in reversed(self._handlers):
            logger.removeHandler(handler)
            logger.propagate = propagate
            logger.setLevel(level)
        self._handlers.clear()
        if self._saved:
            structlog.configure(**self._saved)
        for sink in _SINKS.values():
            if sink.file is not None:
                sink.file.close()
                sink.file = None
