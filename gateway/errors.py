"""The gateway's one base exception and its subclasses, grouped by what the caller does."""

from __future__ import annotations

from collections.abc import Sequence


class GatewayError(Exception):
    """Base of every error raised by ``gateway``."""


class ConfigError(GatewayError):
    """The config file is missing, unreadable or invalid: fix it, then start again."""

    def __init__(self, source: str, lines: Sequence[str]) -> None:
        self.source = source
        self.lines = tuple(lines)
        super().__init__("\n".join(self.lines))


class IdentityError(GatewayError):
    """The hub's key files are unusable: the message says what to do."""


class IdentityMissingError(IdentityError):
    """No keys yet: run ``lockhub gateway init``."""
