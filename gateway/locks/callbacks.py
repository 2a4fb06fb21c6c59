"""HTTP callbacks from vendor bridges, routed by the hub's local API to the lock's driver."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

# The bridge cannot set headers, so the API hands the URL's secret to the handler in its
# metadata under this key (after dropping any header of that name the caller sent).
CALLBACK_SECRET_KEY = "x-lockhub-callback-secret"  # noqa: S105 - a key name, not a secret
# A handler gets the raw request body and headers; it raises LockError (or ValueError for a
# body it cannot parse) and the API answers 400 without leaking why.
CallbackHandler = Callable[[bytes, Mapping[str, str]], Awaitable[None]]


class CallbackRegistry:
    """Which driver handles callbacks addressed to which lock id."""

    def __init__(self) -> None:
        self._handlers: dict[str, CallbackHandler] = {}

    def register(self, lock_id: str, handler: CallbackHandler) -> None:
        """Route callbacks for ``lock_id`` to ``handler`` (the last registration wins)."""
        self._handlers[lock_id] = handler

    def unregister(self, lock_id: str) -> None:
        """Stop routing callbacks for ``lock_id``."""
        self._handlers.pop(lock_id, None)

    def handler(self, lock_id: str) -> CallbackHandler | None:
        """The handler for ``lock_id``, or None."""
        return self._handlers.get(lock_id)
