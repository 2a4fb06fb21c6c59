"""The hub's own remote operations, remembered so a retry checks before it resends.

The coordinator retries an operation with the same request id. When the first try's answer
was lost (timeout, dropped connection, garbled reply) the command may have been carried out;
the ledger says so once the activity feed shows it, and tells which request an activity of
this account confirms.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from ...driver import EventKind, Trigger
from .activities import CloudActivity

# The cloud stamps a remote operation with its own clock; ours may differ by this much.
OPERATION_CLOCK_SLACK = timedelta(minutes=2)
# Operations remembered: far more than can be in flight or retried on one lock.
ATTEMPTS_KEPT = 64


@dataclass(slots=True)
class Attempt:
    """One remote operation: what it asked, when, and whether the feed has confirmed it."""

    kind: EventKind
    sent_at: datetime
    confirmed: bool = False


class OperationLedger:
    """Recent remote operations by request id, oldest first."""

    def __init__(self) -> None:
        self._attempts: OrderedDict[str, Attempt] = OrderedDict()

    def get(self, request_id: str) -> Attempt | None:
        """The earlier try of ``request_id``, if any."""
        return self._attempts.get(request_id)

    def remember(self, request_id: str, kind: EventKind, sent_at: datetime) -> None:
        """Record a try that is about to be sent."""
        self._attempts[request_id] = Attempt(kind, sent_at)
        self._attempts.move_to_end(request_id)
        while len(self._attempts) > ATTEMPTS_KEPT:
            self._attempts.popitem(last=False)

    def forget(self, request_id: str) -> None:
        """The try certainly did not act (the cloud said so): a retry may just resend."""
        self._attempts.pop(request_id, None)

    def claim(self, activity: CloudActivity, user_id: str) -> str | None:
        """The request id of the oldest unconfirmed try that ``activity`` confirms, if any."""
        if activity.trigger is not Trigger.REMOTE or activity.user_id != user_id:
            return None
        for request_id, attempt in self._attempts.items():
            earliest = (attempt.sent_at - OPERATION_CLOCK_SLACK).timestamp() * 1000
            fits = attempt.kind is activity.kind and activity.at_ms >= earliest
            if fits and not attempt.confirmed:
                attempt.confirmed = True
                return request_id
        return None
