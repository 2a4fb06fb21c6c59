"""Schlage WiFi locks through Schlage's cloud, on pyschlage (synchronous: run in threads).

``build`` and ``pair`` are the registry's entry points. The account (``account.py``) runs
every pyschlage call in a worker thread and translates its errors; ``logs.py`` parses the
activity log that attributes unlocks; ``codes.py`` adds keypad codes with a temporary schedule,
so the lock itself enforces the window.
"""

from __future__ import annotations

from .account import Endpoints, SchlageAccount, account
from .driver import LOG_POLL_INTERVAL, SchlageLock
from .errors import SchlageAuthError, SchlageUnreachableError
from .logs import LOG_OVERLAP, LogCursor, LogEntry, classify, parse_logs
from .options import CREDENTIAL_KIND, SchlageOptions, build, read_password_file
from .pairing import pair

__all__ = [
    "CREDENTIAL_KIND",
    "LOG_OVERLAP",
    "LOG_POLL_INTERVAL",
    "Endpoints",
    "LogCursor",
    "LogEntry",
    "SchlageAccount",
    "SchlageAuthError",
    "SchlageLock",
    "SchlageOptions",
    "SchlageUnreachableError",
    "account",
    "build",
    "classify",
    "pair",
    "parse_logs",
    "read_password_file",
]
