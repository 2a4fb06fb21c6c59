"""The cloud's one base exception and its subclasses, grouped by what the caller does."""

from __future__ import annotations


class CloudError(Exception):
    """Base of every error raised by the cloud side outside ``cloud_sync.protocol``."""


class InvalidRequestError(CloudError):
    """The caller's input is invalid: reject it (HTTP 400); ``field`` names what is wrong."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFoundError(CloudError):
    """The named object does not exist (or belongs to another tenant): reject (HTTP 404)."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"no {kind} {ident!r}")
        self.kind = kind
        self.ident = ident


class UnknownHubError(NotFoundError):
    """No hub with this id is registered: drop its messages, register it with ``hub add``."""

    def __init__(self, hub_id: str) -> None:
        super().__init__("hub", hub_id)
        self.hub_id = hub_id


class ConflictError(CloudError):
    """The request contradicts what is stored (a hub re-added with other keys): reject (409)."""


class StoreError(CloudError):
    """The database failed; the operation did not happen."""


class StoreUnavailableError(StoreError):
    """The database is busy or unreachable: retry later; nothing was changed."""


class SchemaError(StoreError):
    """The database schema is not the one this code needs: run ``lockhub cloud migrate``."""

    def __init__(self, current: str | None, head: str) -> None:
        where = "an empty database" if current is None else f"revision {current}"
        super().__init__(
            f"the cloud database is at {where}, this lockhub needs revision {head}; "
            "run `lockhub cloud migrate --config FILE` first"
        )
        self.current = current
        self.head = head
