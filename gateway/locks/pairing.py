"""What a driver's pairing step may ask of the person pairing (the CLI implements it)."""

from __future__ import annotations

from typing import Protocol


class PairUI(Protocol):
    """The terminal during `lockhub gateway pair`: messages out, answers (and secrets) in."""

    def say(self, message: str) -> None:
        """Show one line to the person pairing (never a secret)."""

    async def ask(self, prompt: str, *, secret: bool = False) -> str:
        """Ask for one answer; ``secret`` hides what is typed (passwords, 2FA codes)."""
