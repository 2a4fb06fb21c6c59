"""Carrier APIs as real aiohttp servers on 127.0.0.1, for tests, demos and local runs.

Each fake answers with payloads shaped like the carrier's documented ones, as our connectors
(and karrio's plugins) call them; ``fail_next`` makes the next calls fail as the carrier does
when it is overloaded or refuses a request.
"""

from __future__ import annotations

from .base import CannedFailure, FakeServer

__all__ = ["CannedFailure", "FakeServer"]
