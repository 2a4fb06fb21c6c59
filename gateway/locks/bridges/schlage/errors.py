"""The Schlage driver's errors, grouped by what the caller should do."""

from __future__ import annotations

from ...driver import LockRefusedError, LockUnreachableError


class SchlageUnreachableError(LockUnreachableError):
    """Schlage's cloud did not answer, timed out, was busy (429/5xx) or answered garbage."""


class SchlageAuthError(LockRefusedError):
    """Schlage refused the account's credentials: pair the lock again."""


# What an auth error tells the person to do (format with ``lock_id``).
REPAIR = "pair again: lockhub gateway pair schlage --lock {lock_id}"
